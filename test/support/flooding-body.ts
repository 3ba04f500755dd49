/** How one flooding answer went: the bytes it produced, where it would have stopped, and whether its reader hung up first. */
export interface Flood {
  readonly endBytes: number;
  sent: number;
  cancelled: boolean;
}

/**
 * A body that starts as an answer would (`start`, e.g. `{"access_token":"`) and goes on, `chunkBytes` of `a` a
 * millisecond (paced, so that what the sockets buffer does not take the rest before the client hangs up), until its
 * reader cancels it or `endBytes`, where it stops on its own so that a client reading without a bound still ends (with
 * some other error). Each body's state is pushed onto `floods`.
 */
export function floodingBody(
  floods: Flood[],
  options: { readonly start: string; readonly chunkBytes: number; readonly endBytes: number },
): ReadableStream<Uint8Array> {
  const state: Flood = { endBytes: options.endBytes, sent: 0, cancelled: false };
  floods.push(state);
  const chunk = new TextEncoder().encode('a'.repeat(options.chunkBytes));
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(options.start));
    },
    async pull(controller) {
      if (state.sent >= state.endBytes) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, 1));
      state.sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel() {
      state.cancelled = true;
    },
  });
}
