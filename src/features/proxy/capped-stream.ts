/** How a passed-on body ended: its bytes, and why it was cut (`too_large`, `timeout`, or what broke it), if it was. */
export interface StreamEnd {
  bytes: number;
  error: string | undefined;
}

/**
 * A body passed on chunk by chunk as the reader pulls (so memory holds a chunk, never the body),
 * errored (never silently truncated) once it passes `max` bytes or `deadline` fires. `ended`
 * resolves when it is over, however it ended, with `end` filled in.
 */
export function cappedStream(
  source: ReadableStream<Uint8Array>,
  max: number,
  end: StreamEnd,
  deadline?: AbortSignal,
): { readonly stream: ReadableStream<Uint8Array>; readonly ended: Promise<void> } {
  const reader = source.getReader();
  let finish: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (finish = resolve));
  const stop = (controller: ReadableStreamDefaultController<Uint8Array>, error: string): void => {
    end.error ??= error;
    reader.cancel(error).catch(() => undefined);
    controller.error(new Error(error));
    finish();
  };
  let onAbort: (() => void) | undefined;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (deadline === undefined) return;
        onAbort = () => stop(controller, 'timeout');
        if (deadline.aborted) onAbort();
        else deadline.addEventListener('abort', onAbort, { once: true });
      },
      async pull(controller) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (end.error === undefined) stop(controller, error instanceof Error ? error.message : String(error));
          return;
        }
        if (end.error !== undefined) return;
        if (chunk.done) {
          if (onAbort !== undefined) deadline?.removeEventListener('abort', onAbort);
          controller.close();
          finish();
          return;
        }
        end.bytes += chunk.value.byteLength;
        if (end.bytes > max) {
          stop(controller, 'too_large');
          return;
        }
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        end.error ??= `cancelled by the reader: ${String(reason)}`;
        if (onAbort !== undefined) deadline?.removeEventListener('abort', onAbort);
        finish();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, ended };
}
