/**
 * How a passed-on body ended: its bytes, why it was cut (`too_large`, `timeout`, or what broke it), if it was, and whether
 * its reader (the caller) stopped reading before the end, which is neither an error of the source nor of keyway.
 */
export interface StreamEnd {
  bytes: number;
  error: string | undefined;
  readerLeft?: boolean;
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
        if (end.error === undefined) end.readerLeft = true;
        if (onAbort !== undefined) deadline?.removeEventListener('abort', onAbort);
        finish();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, ended };
}

const REDACTED = new TextEncoder().encode('[redacted]');

/**
 * The stream with every occurrence of `secret` replaced, also across chunk boundaries (the last
 * `secret.length - 1` bytes are held back until the next chunk or the end): an upstream that
 * echoes keyway's credential in its body does not hand it to the caller.
 */
export function redactedStream(source: ReadableStream<Uint8Array>, secret: string): ReadableStream<Uint8Array> {
  const needle = new TextEncoder().encode(secret);
  if (needle.byteLength === 0) return source;
  let held: Uint8Array = new Uint8Array(0);
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const text = concat(held, chunk);
        const { out, rest } = redact(text, needle, false);
        held = rest;
        if (out.byteLength > 0) controller.enqueue(out);
      },
      flush(controller) {
        const { out } = redact(held, needle, true);
        if (out.byteLength > 0) controller.enqueue(out);
      },
    }),
  );
}

function redact(text: Uint8Array, needle: Uint8Array, final: boolean): { out: Uint8Array; rest: Uint8Array } {
  const parts: Uint8Array[] = [];
  let from = 0;
  let at = indexOf(text, needle, 0);
  while (at !== -1) {
    parts.push(text.subarray(from, at), REDACTED);
    from = at + needle.byteLength;
    at = indexOf(text, needle, from);
  }
  // What could be the start of the secret, split by the chunk boundary, waits for the next chunk.
  const keep = final ? 0 : Math.min(needle.byteLength - 1, text.byteLength - from);
  parts.push(text.subarray(from, text.byteLength - keep));
  return { out: parts.reduce(concat, new Uint8Array(0)), rest: text.slice(text.byteLength - keep) };
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= haystack.byteLength - needle.byteLength; i++) {
    for (let j = 0; j < needle.byteLength; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  if (b.byteLength === 0) return a;
  const joined = new Uint8Array(a.byteLength + b.byteLength);
  joined.set(a, 0);
  joined.set(b, a.byteLength);
  return joined;
}
