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
        let chunk: Awaited<ReturnType<typeof reader.read>>;
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

/**
 * The credential as a body may hold it, and `[redacted]` written the same way so the body still decodes. `backslash`
 * (the needle's encoding of `\`), for a needle that begins with `\` (an escape, or an escaped `\` in JSON quoted in
 * JSON): where an odd run of `\` stands before it, the run's last one escapes the needle's first, so one `\` is
 * written before `[redacted]` to close that pair: no lone `\` is left, which no JSON reader takes.
 */
interface Needle {
  readonly bytes: Uint8Array;
  readonly replacement: Uint8Array;
  readonly backslash?: Uint8Array;
}

const UTF_8 = new TextEncoder();

/**
 * The text in UTF-8 and in UTF-16 and UTF-32 of either byte order: what an upstream writes when the caller's Accept
 * names the charset (Spring does as it asks), or on its own, with a byte order mark or without one. Looked for as
 * bytes, whatever the answer's Content-Type declares. And in ISO-8859-1, as a header carries it: fetch sends a
 * character of a credential from U+0080 to U+00FF as its one byte, and an upstream that echoes the header's bytes
 * writes that byte (a text that holds a character beyond, which no header carries, has its UTF-8 there again).
 */
function encodings(text: string): readonly Uint8Array[] {
  const units = new Uint16Array(text.length);
  let highest = 0;
  for (let at = 0; at < text.length; at++) {
    const unit = text.charCodeAt(at);
    units[at] = unit;
    highest = Math.max(highest, unit);
  }
  let count = 0;
  let highestPoint = 0;
  const points = new Uint32Array(text.length);
  for (let at = 0; at < text.length; count++) {
    const point = text.codePointAt(at)!;
    points[count] = point;
    highestPoint = Math.max(highestPoint, point);
    at += point > 0xffff ? 2 : 1;
  }
  const written = (values: Uint16Array | Uint32Array, largest: number, size: 2 | 4, littleEndian: boolean): Uint8Array => {
    const bytes = new Uint8Array(values.length * size);
    // A byte of each value at a time, and of the higher ones (zeros in most text) only those the largest value reaches.
    for (let k = 0; k < size && largest >>> (8 * k) !== 0; k++) {
      for (let at = 0, to = littleEndian ? k : size - 1 - k; at < values.length; at++, to += size) bytes[to] = (values[at]! >>> (8 * k)) & 0xff;
    }
    return bytes;
  };
  const utf8 = UTF_8.encode(text);
  // UTF-8's own array where the bytes are the same (ASCII): a replacement is then one encoding's, whichever found it.
  const latin1 = highest >= 0x80 && highest <= 0xff ? Uint8Array.from(units) : utf8;
  const utf32 = points.subarray(0, count);
  return [
    utf8,
    written(units, highest, 2, true),
    written(units, highest, 2, false),
    written(utf32, highestPoint, 4, true),
    written(utf32, highestPoint, 4, false),
    latin1,
  ];
}

/** A character as `\uXXXX` escapes of its UTF-16 code units: a surrogate pair beyond U+FFFF. */
const unicodeEscaped = (character: string, capitals: boolean): string =>
  Array.from({ length: character.length }, (_, at) => {
    const digits = character.charCodeAt(at).toString(16).padStart(4, '0');
    return `\\u${capitals ? digits.toUpperCase() : digits}`;
  }).join('');

/** Escapes of characters as `\uXXXX`, as JSON encoders that make their output safe inside HTML write them. */
const unicodeEscapes = (characters: string, capitals = false): ReadonlyMap<string, string> =>
  new Map([...characters].map((character) => [character, unicodeEscaped(character, capitals)]));

/**
 * How a JSON encoder writes a character inside a string beyond what JSON requires (`"` and `\` escaped as `\"` and
 * `\\`, a tab as `\t`): `escapes` of some characters, and each character beyond ASCII as it is or, `beyondAscii`, as `\uXXXX` with
 * small or capital hex digits (a surrogate pair beyond U+FFFF).
 */
interface JsonStyle {
  readonly escapes: ReadonlyMap<string, string>;
  readonly beyondAscii?: 'small' | 'capital';
}

/**
 * JSON.stringify and Jackson write nothing more; Python's json.dumps writes each character beyond ASCII as `\u00e4`
 * (`ensure_ascii`, its default); PHP's json_encode escapes `/` as `\/` and, unless told otherwise, writes beyond ASCII
 * as Python does; Go's encoding/json and Rails write `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`…, Gson those and `=`
 * and `'` too; .NET's System.Text.Json (ASP.NET Core's default) `"`, `&`, `'`, `+`, `<`, `>` and `` ` `` with capital
 * hex digits, `+` as `\u002B`, and each character beyond ASCII so too unless the application allows its range.
 */
const JSON_STYLES: readonly JsonStyle[] = [
  { escapes: new Map() },
  { escapes: new Map(), beyondAscii: 'small' },
  { escapes: new Map([['/', '\\/']]) },
  { escapes: new Map([['/', '\\/']]), beyondAscii: 'small' },
  { escapes: unicodeEscapes('<>&\u2028\u2029') },
  { escapes: unicodeEscapes("<>&='\u2028\u2029") },
  { escapes: unicodeEscapes('"&\'+<>`', true), beyondAscii: 'capital' },
  { escapes: unicodeEscapes('"&\'+<>`', true) },
];

/**
 * What JSON requires escaped, as every style writes it: `"`, `\` and, of the control characters, the tab, the only one a
 * header value (and so a credential) holds.
 */
const JSON_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '\\"'],
  ['\\', '\\\\'],
  ['\t', '\\t'],
]);

/** The characters some style writes otherwise than as themselves: those of its map, and JSON_ESCAPES' in every one. */
const ESCAPED_BY_SOME_STYLE: ReadonlySet<string> = new Set([...JSON_ESCAPES.keys(), ...JSON_STYLES.flatMap((style) => [...style.escapes.keys()])]);

const isBeyondAscii = (character: string): boolean => character.charCodeAt(0) >= 0x80;

/** A character some style writes otherwise than as itself: one of ESCAPED_BY_SOME_STYLE, or one beyond ASCII. */
const WRITTEN_OTHERWISE = new RegExp(`[${[...ESCAPED_BY_SOME_STYLE].map((character) => unicodeEscaped(character, false)).join('')}\\u0080-\\uffff]`);

/** The character as the style writes it in a JSON string. */
function writtenAs(style: JsonStyle, character: string): string {
  const escaped = style.escapes.get(character) ?? JSON_ESCAPES.get(character);
  if (escaped !== undefined) return escaped;
  return style.beyondAscii !== undefined && isBeyondAscii(character) ? unicodeEscaped(character, style.beyondAscii === 'capital') : character;
}

/**
 * The text as it is, and as each JSON encoder style writes it in a string: an upstream that echoes the credential in a
 * JSON answer writes it so, and a JSON reader gets the credential back whole.
 */
function writtenForms(text: string): readonly string[] {
  // Most credentials (a JWT, a base64url or hex token) hold no character any style writes otherwise: one form.
  if (!WRITTEN_OTHERWISE.test(text)) return [text];
  return [...new Set([text, ...JSON_STYLES.map((style) => [...text].map((character) => writtenAs(style, character)).join(''))])];
}

/**
 * What redactedStream looks for, prepared from the secret or its written forms: once for a secret that serves many answers
 * (a static upstream's, an installation token reused until it expires), since a 1.7 KB PEM secret's took 25-45 ms of the
 * thread that serves every request, built again for each answer. Undefined for an empty secret: nothing to look for.
 */
export function redactionOf(secret: string | WrittenForms): Redaction | undefined {
  return searchFor(typeof secret === 'string' ? writtenFormsOf(secret) : secret, false);
}

/**
 * The forms of a secret redactionOf looks for, as needles, and how many bytes they come to: its search holds about 20
 * bytes for each. A secret of characters every encoder writes otherwise (`é/‹"+&=` and tabs) has hundreds of forms: 8,192
 * of them came to 23 MB, a search of 460 MB. Written once for a static secret, whose bytes are bounded before its search
 * is built from them.
 */
export interface WrittenForms {
  readonly needles: readonly Needle[];
  readonly bytes: number;
}

export function writtenFormsOf(secret: string): WrittenForms {
  const needles = needlesOf(secret);
  return { needles, bytes: needles.reduce((total, { bytes }) => total + bytes.byteLength, 0) };
}

const REPLACEMENTS = encodings('[redacted]');
const BACKSLASHES = encodings('\\');

function needlesOf(secret: string): Needle[] {
  const once = writtenForms(secret);
  // A JSON string that holds JSON text holding the credential (a log line, an error quoting a body) escapes it again, as
  // its own encoder does: PHP's writes the `\/` of a PHP answer as `\\\/`.
  const twice = once.flatMap((form) => writtenForms(form).slice(1));
  return [...new Set([...once, ...twice])].flatMap((form) =>
    encodings(form).map((bytes, at): Needle => ({ bytes, replacement: REPLACEMENTS[at]!, ...(form.startsWith('\\') ? { backslash: BACKSLASHES[at]! } : {}) })),
  );
}

/** Slices of a chunk are redacted one after the other: `hits` takes 8 bytes for each place a needle begins. */
const SLICE_BYTES = 64 * 1024;

/**
 * The stream with every occurrence of `secret` replaced, as it is or escaped in a JSON string as common encoders escape
 * it, in UTF-8, UTF-16 or UTF-32, also across chunk boundaries (the last bytes that could start one are held back until
 * the next chunk or the end): an upstream that echoes keyway's credential in its body does not hand it to the caller.
 * Occurrences that overlap (`abab` twice in `ababab`) are replaced as one. The secret, or its redactionOf.
 */
export function redactedStream(source: ReadableStream<Uint8Array>, secret: string | Redaction | undefined): ReadableStream<Uint8Array> {
  // A secret of this answer alone (a keyway JWT, minted for its one request) has its automata built only if the answer needs them.
  const search = typeof secret === 'string' ? searchFor(writtenFormsOf(secret), true) : secret;
  if (search === undefined) return source;
  const keep = search.longest - 1;
  let held: Uint8Array = new Uint8Array(0);
  // Before the body, no `\` stands.
  let carried: Carried = { runs: new Map(search.backslashes.map((unit) => [unit, Array.from({ length: unit.byteLength }, (_, k) => (k === 0 ? 0 : NONE))])) };
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        // Read whole, 16 MiB of `a`s held 128 MiB of hits for the secret `aa`, 256 MiB as they grew.
        for (let at = 0; at < chunk.byteLength; at += SLICE_BYTES) {
          const text = joined([held, chunk.subarray(at, at + SLICE_BYTES)]);
          const { out, rest, next } = redact(text, search, keep, carried);
          held = rest;
          carried = next;
          if (out.byteLength > 0) controller.enqueue(out);
        }
      },
      flush(controller) {
        const { out } = redact(held, search, 0, carried);
        if (out.byteLength > 0) controller.enqueue(out);
      },
    }),
  );
}

/**
 * Node numbers and depths, which are fewer than the nodes: 16 bits each where an automaton has 65,536 nodes at most (a
 * token's, a keyway JWT's, built for each answer), else 32.
 */
type Numbers = Uint16Array | Int32Array;

/**
 * Byte strings as a trie with, for each node, `fail`: the node of the longest proper suffix of its bytes that is a node
 * too (Aho-Corasick), so that a text is read once, each byte followed from the node the bytes before it reached. Read
 * instead from each place where a needle could begin, as far as the text follows the trie, a secret that repeats itself
 * (`a` forty times, in an answer of `a`s) had each byte read forty times: 16 MiB held the thread for 2.9 s. Nodes are
 * numbered, the root 0, which no byte leads to. The strings are put in longest first, so that no node that ends one
 * gets a child later: a node with one child (most: the needles part only where an encoder escapes) was made just before
 * it, which is the next node, and `only` holds its byte; NONE, no child; one with several (the root too), MANY less the
 * number of its row of 256 children in `rows` (the root's the first). Held for each answer, or for as long as a static
 * secret: a node costs `only`, `fail` and one more number, `depth` (how many bytes lead to it, which the forward
 * automaton tells) or `ends` (the index of the longest string its bytes end with, itself or one along `fail`, or NONE,
 * which the backward one tells): with the child of each node stored too, and both numbers, twice as many bytes.
 */
interface Trie {
  readonly only: Int16Array;
  readonly rows: Numbers;
  readonly fail: Numbers;
}

interface Forward extends Trie {
  readonly depth: Numbers;
}

interface Backward extends Trie {
  readonly ends: Int16Array;
}

/**
 * The needles, and two automata of them. What a place of the text gets is the longest needle that begins there, which
 * a text read forward tells only bytes later, where the needle ends: read from its end back along `backward`, of each
 * needle's bytes reversed, the node reached at a place ends with it. `forward`, of their bytes: the text read to its
 * end, the node reached and those along its `fail` are the ends of it that begin a needle, which the next chunk may
 * complete. (npm's Aho-Corasick packages search strings, not bytes, and tell each match where it ends.) Each automaton is
 * built when first asked for (`lazily`, for one answer) or at once: building both was most of what a keyway JWT's
 * redaction cost each answer, 0.65-0.8 ms. A text needs the backward one only where it holds as many bytes as the shortest
 * needle, one after the other, each a byte some needle has (`kinds`, IN); the forward one only where it ends with such
 * bytes, the last one a byte some needle has before its last (BEFORE_LAST), and, built lazily, more than SHORT_TAIL of
 * them: a JSON answer ends with `}` or a line break, a chunk boundary cuts it inside a word, and its quotes, spaces and
 * punctuation cut it into runs shorter than a 1 KB JWT.
 */
interface Search {
  readonly needles: readonly Needle[];
  readonly forward: () => Forward;
  readonly backward: () => Backward;
  readonly kinds: Uint8Array;
  readonly shortest: number;
  readonly lazily: boolean;
}

const IN = 1;
const BEFORE_LAST = 2;

/** The search, the encodings of `\` the needles' `backslash` are (by identity: runs of each are counted), the longest needle's length. */
export interface Redaction extends Search {
  readonly backslashes: readonly Uint8Array[];
  readonly longest: number;
}

const NONE = -1;
const MANY = -2;

/** How an automaton is built: at once, or the first time it is asked for. */
type Made = <T>(build: () => T) => () => T;

const now: Made = (build) => {
  const built = build();
  return () => built;
};

const later: Made = <T>(build: () => T) => {
  let built: T | undefined;
  return () => (built ??= build());
};

function searchFor({ needles, bytes }: WrittenForms, lazily: boolean): Redaction | undefined {
  if (bytes === 0) return undefined;
  const made = lazily ? later : now;
  const strings = needles.map(({ bytes }) => bytes);
  const kinds = new Uint8Array(256);
  for (const bytes of new Set(strings)) {
    const last = bytes.byteLength - 1;
    for (let at = 0; at < last; at++) kinds[bytes[at]!] = IN | BEFORE_LAST;
    kinds[bytes[last]!]! |= IN;
  }
  const lengths = strings.map((bytes) => bytes.byteLength);
  return {
    needles,
    forward: made(() => {
      const { only, rows, fail, depth } = automatonOf(strings, false);
      return { only, rows, fail, depth };
    }),
    backward: made(() => {
      const { only, rows, fail, ends } = automatonOf(strings, true);
      return { only, rows, fail, ends };
    }),
    kinds,
    shortest: Math.min(...lengths),
    lazily,
    backslashes: BACKSLASHES,
    longest: Math.max(...lengths),
  };
}

/** The automaton of the strings, or of their bytes `reversed`. Strings are indexed in `ends` as given; fewer than 2^15. */
function automatonOf(strings: readonly Uint8Array[], reversed: boolean): Forward & Backward {
  // An array given twice (UTF-8's, which ISO-8859-1 shares for ASCII) makes no node more.
  const size = [...new Set(strings)].reduce((total, bytes) => total + bytes.byteLength, 1);
  const only = new Int16Array(size).fill(NONE);
  // A row for the root and for each node where two strings part: each string after the first makes one at most.
  const Numbers = size <= 0x10000 ? Uint16Array : Int32Array;
  let rows: Numbers = new Numbers(256 * strings.length);
  const depth = new Numbers(size);
  const ends = new Int16Array(size).fill(NONE);
  const fail = new Numbers(size);
  only[0] = MANY;
  let nodes = 1;
  let row = 1;
  const longestFirst = strings.map((_, index) => index).sort((a, b) => strings[b]!.byteLength - strings[a]!.byteLength);
  for (const index of longestFirst) {
    const bytes = strings[index]!;
    const length = bytes.byteLength;
    const byteAt = (at: number): number => bytes[reversed ? length - 1 - at : at]!;
    // Along the trie as far as it holds the string's bytes.
    let node = 0;
    let at = 0;
    for (; at < length; at++) {
      const next = step(only, rows, node, byteAt(at));
      if (next === 0) break;
      node = next;
    }
    if (at < length) {
      // The rest is new: a chain from `node`, each node the one before's only child.
      const byte = byteAt(at);
      const one = only[node]!;
      if (one === NONE) only[node] = byte;
      else {
        if (one > MANY) {
          // Its one child is the next node.
          rows[row * 256 + one] = node + 1;
          only[node] = MANY - row++;
        }
        rows[(MANY - only[node]!) * 256 + byte] = nodes;
      }
      for (let from = depth[node]!; at < length; at++) {
        depth[nodes] = ++from;
        if (at + 1 < length) only[nodes] = byteAt(at + 1);
        node = nodes++;
      }
    }
    ends[node] = index;
  }
  rows = rows.slice(0, row * 256);
  // Breadth first: a node's suffix is shorter, so its own is known.
  const queue = new Int32Array(nodes);
  for (let head = 0, tail = 1; head < tail; head++) {
    const node = queue[head]!;
    const one = only[node]!;
    if (one === NONE) continue;
    for (let byte = one <= MANY ? 0 : one; byte < (one <= MANY ? 256 : one + 1); byte++) {
      const next = step(only, rows, node, byte);
      if (next === 0) continue;
      fail[next] = node === 0 ? 0 : transition(only, rows, fail, fail[node]!, byte);
      if (ends[next] === NONE) ends[next] = ends[fail[next]!]!;
      queue[tail++] = next;
    }
  }
  return { only, rows, fail, depth, ends };
}

/** The node `byte` leads to from `node` in the trie, or 0 (the root, which no byte leads to: none). */
function step(only: Int16Array, rows: Numbers, node: number, byte: number): number {
  const one = only[node]!;
  if (one === byte) return node + 1;
  return one <= MANY ? rows[(MANY - one) * 256 + byte]! : 0;
}

/** The node the bytes that reached `node` and `byte` after them reach: `byte` from it, or else from its suffixes. */
function transition(only: Int16Array, rows: Numbers, fail: Numbers, node: number, byte: number): number {
  for (let at = node; ; at = fail[at]!) {
    const next = step(only, rows, at, byte);
    if (next !== 0 || at === 0) return next;
  }
}

/**
 * The needles in a text, the longest where several begin at one place: in `hits`, where each begins and its index in
 * `needles`, two by two, from the last to the first; `next`, the index of the first not passed yet; `wait`, where the
 * text runs out along a longer needle while more may come (one form begins with another: `ab\` and JSON's `ab\\`), else
 * the text's length: from there on, the next chunk decides.
 */
interface Occurrences {
  readonly needles: readonly Needle[];
  readonly hits: Int32Array;
  next: number;
  readonly wait: number;
}

function occurrencesIn(text: Uint8Array, search: Search, keep: number): Occurrences {
  const { needles, backward, kinds, shortest } = search;
  let hits = new Int32Array(64);
  let count = 0;
  if (holdsRun(text, kinds, shortest)) {
    const { only, rows, fail, ends } = backward();
    let node = 0;
    for (let place = text.byteLength - 1; place >= 0; place--) {
      const byte = text[place]!;
      // Most bytes of a body end no needle: read along the root's row alone.
      node = node === 0 ? rows[byte]! : transition(only, rows, fail, node, byte);
      if (node === 0 || ends[node] === NONE) continue;
      if (count === hits.length) {
        const grown = new Int32Array(count * 2);
        grown.set(hits);
        hits = grown;
      }
      hits[count++] = place;
      hits[count++] = ends[node]!;
    }
  }
  return { needles, hits, next: count - 2, wait: keep > 0 ? waitIn(text, search, keep) : text.byteLength };
}

/**
 * The longest run of IN bytes at a text's end whose needles' starts are compared with it, not read along `forward`, where
 * that is built lazily.
 */
const SHORT_TAIL = 64;

/**
 * Where the text runs out along a needle, in its last `keep` bytes, or its length. Such a needle's bytes are all IN and
 * the last of them BEFORE_LAST: a text that ends otherwise needs no automaton, and one that ends with a short run of IN
 * bytes (a word cut by a chunk boundary) has the needles' starts compared with the run's ends, longest first, where
 * `forward` is built lazily (for an answer's own secret, a keyway JWT: six needles). A search prepared at once has it:
 * compared so, a static secret's hundreds of needles, which share their bytes up to the first character an encoder
 * escapes, held the thread for 16 s over 1 MiB in chunks that each ended along its first 63 bytes.
 */
function waitIn(text: Uint8Array, { needles, forward, kinds, lazily }: Search, keep: number): number {
  const length = text.byteLength;
  if (length === 0 || (kinds[text[length - 1]!]! & BEFORE_LAST) === 0) return length;
  const first = Math.max(0, length - keep);
  if (lazily) {
    let from = length;
    while (from > first && length - from < SHORT_TAIL && (kinds[text[from - 1]!]! & IN) !== 0) from--;
    if (from === first || (kinds[text[from - 1]!]! & IN) === 0) {
      for (let place = from; place < length; place++) {
        const tail = text.subarray(place);
        if (needles.some(({ bytes }) => bytes.byteLength > tail.byteLength && startsAt(bytes, tail, 0))) return place;
      }
      return length;
    }
  }
  const { only, rows, fail, depth } = forward();
  let end = 0;
  for (let place = first; place < length; place++) end = end === 0 ? rows[text[place]!]! : transition(only, rows, fail, end, text[place]!);
  for (; end !== 0 && only[end] === NONE; end = fail[end]!);
  return end === 0 ? length : length - depth[end]!;
}

/** Whether `length` bytes of the text, one after the other, are each IN: where no needle can stand, none is looked for. */
function holdsRun(text: Uint8Array, kinds: Uint8Array, length: number): boolean {
  for (let place = 0, run = 0; place < text.byteLength; place++) {
    run = (kinds[text[place]!]! & IN) === 0 ? 0 : run + 1;
    if (run === length) return true;
  }
  return false;
}

/** Where the next occurrence begins, from `place` on, or `wait`: it is then `current`. */
function upcoming(found: Occurrences, place: number): number {
  const { hits } = found;
  while (found.next >= 0 && hits[found.next]! < place) found.next -= 2;
  return found.next >= 0 && hits[found.next]! < found.wait ? hits[found.next]! : found.wait;
}

const current = ({ needles, hits, next }: Occurrences): Needle => needles[hits[next + 1]!]!;

/**
 * Where a replacement of bytes up to `end` reaches, with each occurrence that begins in it from `first` on and ends past
 * it taken in (`abab` at 2 in `ababab`: resumed past the first, its end was passed on, and a secret whose end repeats its
 * start is told by that end): one in the same encoding; and one in another whose bytes past it are not all zeros, unless
 * an occurrence that begins where the replacement ends reaches as far (it is replaced next). The zeros of UTF-16 and UTF-32
 * let occurrences in two byte orders overlap: in UTF-16LE text `xS`, UTF-16BE's `S` begins a byte before UTF-16LE's and
 * ends a byte before it, whose zero is kept so that the text stays aligned, and in `SS` it ends inside the second, which is
 * replaced on its own; but UTF-16LE's `S` and UTF-16BE's sharing the first's last zero left the whole of the second. `waitFrom`:
 * where one could begin that the text runs out on.
 */
function reachOf(text: Uint8Array, found: Occurrences, first: number, end: number, replacement: Uint8Array): { end: number; waitFrom?: number } {
  let reach = end;
  // The occurrence in another encoding that reaches furthest past the replacement.
  let other = { from: reach, end: reach };
  for (let at = upcoming(found, first); ; at = upcoming(found, at + 1)) {
    // None begins before `at`: the replacement ends where it reaches, or takes in the one in another encoding.
    while (reach <= at) {
      if (other.end <= reach || text.subarray(reach, other.end).every((byte) => byte === 0)) return { end: reach };
      if (reach === found.wait) return { end: reach, waitFrom: other.from };
      if (reach === at && reach + current(found).bytes.byteLength >= other.end) return { end: reach };
      reach = other.end;
    }
    // Read again from the one in another encoding too, if it reaches past: the next chunk decides on it as well.
    if (at === found.wait) return { end: reach, waitFrom: other.end > reach ? other.from : at };
    const { bytes, replacement: its } = current(found);
    const past = at + bytes.byteLength;
    if (its === replacement) reach = Math.max(reach, past);
    else if (past > other.end) other = { from: at, end: past };
  }
}

/**
 * What one chunk's redaction tells the next: the runs of `\` before its text, and `covered`, the bytes at its start a
 * replacement already took (an occurrence that overlaps them may reach further).
 */
interface Carried {
  readonly runs: Runs;
  readonly covered?: { readonly bytes: number; readonly replacement: Uint8Array };
}

/**
 * The text with every needle replaced, less its end from where a needle could begin that it runs out along (`wait`, in its
 * last `keep` bytes: split by the chunk boundary, it waits for the next chunk). Held back whether or not they could begin
 * one, the last `keep` bytes were read again with each chunk: a 2 KB token's 8 KB with each piece of a streamed answer, and
 * an event of a stream reached the caller only with the next. Read in one pass: a search for each of the needles over
 * the whole text, byte by byte, took a second of the thread that serves every request for 16 MiB.
 */
function redact(text: Uint8Array, search: Search, keep: number, carried: Carried): { out: Uint8Array; rest: Uint8Array; next: Carried } {
  const found = occurrencesIn(text, search, keep);
  const parts: Uint8Array[] = [];
  let from = 0;
  let cut: number | undefined;
  let covered = carried.covered;
  if (covered !== undefined) {
    const reach = reachOf(text, found, 0, covered.bytes, covered.replacement);
    from = reach.end;
    cut = reach.waitFrom;
    if (cut !== undefined) covered = { bytes: from - cut, replacement: covered.replacement };
  }
  // Where what the last chunk replaced still waits on the next, nothing after it is read yet.
  if (cut === undefined) {
    for (let at = upcoming(found, from); at < found.wait; at = upcoming(found, from)) {
      const needle = current(found);
      parts.push(text.subarray(from, at));
      if (needle.backslash !== undefined && runBefore(text, needle.backslash, from, at, carried.runs) % 2 === 1) parts.push(needle.backslash);
      parts.push(needle.replacement);
      const reach = reachOf(text, found, at + 1, at + needle.bytes.byteLength, needle.replacement);
      from = reach.end;
      cut = reach.waitFrom;
      if (cut !== undefined) {
        covered = { bytes: from - cut, replacement: needle.replacement };
        break;
      }
    }
  }
  if (cut === undefined) {
    covered = undefined;
    cut = Math.max(from, found.wait);
    parts.push(text.subarray(from, cut));
  }
  const next: Carried = { runs: runsAt(text, from, cut, carried.runs), ...(covered === undefined ? {} : { covered }) };
  const out = joined(parts);
  // A replacement alone is a constant every answer shares: passed on as it is, a reader that detached its buffer (a
  // transfer) would empty it for every answer after.
  return { out: REPLACEMENTS.includes(out) || BACKSLASHES.includes(out) ? out.slice() : out, rest: text.slice(cut), next };
}

/**
 * For each encoding of `\` (by its unit), at `k` from 0 to its length less one: how many whole units stand right before
 * the last `k` bytes before the text, where those `k` are the unit's first (a unit a chunk boundary cut in two), else
 * NONE. A run that meets the text's start out of step with its unit is counted on so.
 */
type Runs = ReadonlyMap<Uint8Array, readonly number[]>;

/**
 * How many `unit` stand right before `at`: counted back to `from` (what precedes `from` was replaced, so the count is
 * exact) or to the text's start, and there on with `runs`.
 */
function runBefore(text: Uint8Array, unit: Uint8Array, from: number, at: number, runs: Runs): number {
  const size = unit.byteLength;
  let run = 0;
  let start = at - size;
  for (; start >= from && startsAt(text, unit, start); start -= size) run++;
  if (from > 0 || start >= 0) return run;
  // The unit before began `-start` bytes before the text: whole there (`-start` is its size), or cut in two.
  const k = -start % size;
  const before = runs.get(unit)?.[k] ?? NONE;
  if (before === NONE || (k > 0 && !startsAt(text, unit.subarray(k), 0))) return run;
  return run + (k > 0 ? 1 : 0) + before;
}

/** The runs before `text.subarray(cut)`, for the next chunk, which begins there. */
function runsAt(text: Uint8Array, from: number, cut: number, runs: Runs): Runs {
  return new Map(
    [...runs.keys()].map((unit) => [
      unit,
      Array.from({ length: unit.byteLength }, (_, k) => {
        if (k === 0) return runBefore(text, unit, from, cut, runs);
        if (cut - k >= from) return startsAt(text, unit.subarray(0, k), cut - k) ? runBefore(text, unit, from, cut - k, runs) : NONE;
        // Replaced bytes among them: no `\`.
        if (from > 0) return NONE;
        // They begin before the text: its first `cut` bytes end them.
        return startsAt(text, unit.subarray(k - cut, k), 0) ? (runs.get(unit)?.[k - cut] ?? NONE) : NONE;
      }),
    ]),
  );
}

/** Whether `bytes` stand in `text` at `at`. */
function startsAt(text: Uint8Array, bytes: Uint8Array, at: number): boolean {
  if (at + bytes.byteLength > text.byteLength) return false;
  for (let j = 0; j < bytes.byteLength; j++) if (text[at + j] !== bytes[j]) return false;
  return true;
}

/** The parts one after the other, copied once: joining them two by two copies what came first again for every part. */
function joined(parts: readonly Uint8Array[]): Uint8Array {
  const nonEmpty = parts.filter((part) => part.byteLength > 0);
  if (nonEmpty.length === 1) return nonEmpty[0]!;
  const out = new Uint8Array(nonEmpty.reduce((total, part) => total + part.byteLength, 0));
  let at = 0;
  for (const part of nonEmpty) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
