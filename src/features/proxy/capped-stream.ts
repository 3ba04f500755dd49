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

/** The credential as a body may hold it, and `[redacted]` written the same way so the body still decodes. */
interface Needle {
  readonly bytes: Uint8Array;
  readonly replacement: Uint8Array;
}

/**
 * The text in UTF-8 and in UTF-16 and UTF-32 of either byte order: what an upstream writes when the caller's Accept
 * names the charset (Spring does as it asks), or on its own, with a byte order mark or without one. Looked for as
 * bytes, whatever the answer's Content-Type declares.
 */
function encodings(text: string): readonly Uint8Array[] {
  const units = Array.from({ length: text.length }, (_, at) => text.charCodeAt(at));
  const points = Array.from(text, (character) => character.codePointAt(0)!);
  const written = (values: readonly number[], size: 2 | 4, littleEndian: boolean): Uint8Array => {
    const view = new DataView(new ArrayBuffer(values.length * size));
    for (const [at, value] of values.entries()) {
      if (size === 2) view.setUint16(at * 2, value, littleEndian);
      else view.setUint32(at * 4, value, littleEndian);
    }
    return new Uint8Array(view.buffer);
  };
  return [new TextEncoder().encode(text), written(units, 2, true), written(units, 2, false), written(points, 4, true), written(points, 4, false)];
}

/** Escapes of ASCII characters as `\uXXXX`, as JSON encoders that make their output safe inside HTML write them. */
const unicodeEscapes = (characters: string, capitals = false) =>
  new Map(
    [...characters].map((character) => {
      const digits = character.charCodeAt(0).toString(16).padStart(4, '0');
      return [character, `\\u${capitals ? digits.toUpperCase() : digits}`];
    }),
  );

/**
 * How JSON encoders write a character inside a string beyond what JSON requires (`"` and `\` escaped as `\"` and `\\`):
 * PHP's json_encode escapes `/` as `\/` by default, Go's encoding/json and Rails `<`, `>` and `&` as `\u003c`, `\u003e`
 * and `\u0026`, Gson those and `=` and `'` too, and .NET's System.Text.Json (ASP.NET Core's default) `"`, `&`, `'`, `+`,
 * `<`, `>` and `` ` `` with capital hex digits, `+` as `\u002B`.
 */
const JSON_STYLES: readonly ReadonlyMap<string, string>[] = [
  new Map(),
  new Map([['/', '\\/']]),
  unicodeEscapes('<>&'),
  unicodeEscapes("<>&='"),
  unicodeEscapes('"&\'+<>`', true),
];

/**
 * The text as it is, and as each JSON encoder style writes it in a string: an upstream that echoes the credential in a
 * JSON answer writes it so, and a JSON reader gets the credential back whole.
 */
function writtenForms(text: string): readonly string[] {
  const forms = JSON_STYLES.map((style) =>
    [...text].map((character) => style.get(character) ?? (character === '"' || character === '\\' ? `\\${character}` : character)).join(''),
  );
  return [...new Set([text, ...forms])];
}

/**
 * The stream with every occurrence of `secret` replaced, as it is or escaped in a JSON string as common encoders escape
 * it, in UTF-8, UTF-16 or UTF-32, also across chunk boundaries (the last bytes that could start one are held back until
 * the next chunk or the end): an upstream that echoes keyway's credential in its body does not hand it to the caller.
 */
export function redactedStream(source: ReadableStream<Uint8Array>, secret: string): ReadableStream<Uint8Array> {
  if (secret === '') return source;
  const replacements = encodings('[redacted]');
  const needles = writtenForms(secret).flatMap((form) => encodings(form).map((bytes, at): Needle => ({ bytes, replacement: replacements[at]! })));
  let held: Uint8Array = new Uint8Array(0);
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const text = concat(held, chunk);
        const { out, rest } = redact(text, needles, false);
        held = rest;
        if (out.byteLength > 0) controller.enqueue(out);
      },
      flush(controller) {
        const { out } = redact(held, needles, true);
        if (out.byteLength > 0) controller.enqueue(out);
      },
    }),
  );
}

function redact(text: Uint8Array, needles: readonly Needle[], final: boolean): { out: Uint8Array; rest: Uint8Array } {
  const parts: Uint8Array[] = [];
  let from = 0;
  // Where each needle is next found; searched again only once a replacement has passed it, so the text is read once per needle.
  const next = needles.map((needle) => indexOf(text, needle.bytes, 0));
  for (;;) {
    let first = -1;
    for (const [which, needle] of needles.entries()) {
      if (next[which]! !== -1 && next[which]! < from) next[which] = indexOf(text, needle.bytes, from);
      const at = next[which]!;
      // The first found; of two found at the same place, the longer.
      if (at !== -1 && (first === -1 || at < next[first]! || (at === next[first]! && needle.bytes.byteLength > needles[first]!.bytes.byteLength)))
        first = which;
    }
    if (first === -1) break;
    parts.push(text.subarray(from, next[first]!), needles[first]!.replacement);
    from = next[first]! + needles[first]!.bytes.byteLength;
  }
  // What could be the start of the secret, split by the chunk boundary, waits for the next chunk.
  const longest = Math.max(...needles.map((needle) => needle.bytes.byteLength));
  const keep = final ? 0 : Math.min(longest - 1, text.byteLength - from);
  parts.push(text.subarray(from, text.byteLength - keep));
  return { out: parts.reduce(concat, new Uint8Array(0)), rest: text.slice(text.byteLength - keep) };
}

/**
 * Where `needle` is first found in `haystack` from `from`, or -1. Each place its first byte stands is found by the typed
 * array's own search, which runs far faster than a loop over every byte: redact looks for some 25 needles in each chunk.
 */
function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const last = haystack.byteLength - needle.byteLength;
  for (let i = haystack.indexOf(needle[0]!, from); i !== -1 && i <= last; i = haystack.indexOf(needle[0]!, i + 1)) {
    let j = 1;
    while (j < needle.byteLength && haystack[i + j] === needle[j]) j++;
    if (j === needle.byteLength) return i;
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
