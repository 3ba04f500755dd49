import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cappedStream, redactedStream, redactionOf, type StreamEnd } from '../../src/features/proxy/capped-stream.ts';

const bytesStreamOf = (chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });

const streamOf = (chunks: readonly string[]): ReadableStream<Uint8Array> => bytesStreamOf(chunks.map((chunk) => new TextEncoder().encode(chunk)));

type Encoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'utf-32le' | 'utf-32be';

/** The text in that encoding, each code unit (UTF-16) or code point (UTF-32) in its byte order. */
const encoded = (text: string, encoding: Encoding): Uint8Array => {
  if (encoding === 'utf-8') return new TextEncoder().encode(text);
  const values = encoding.startsWith('utf-16')
    ? Array.from({ length: text.length }, (_, at) => text.charCodeAt(at))
    : Array.from(text, (c) => c.codePointAt(0)!);
  const size = encoding.startsWith('utf-16') ? 2 : 4;
  const view = new DataView(new ArrayBuffer(values.length * size));
  for (const [at, value] of values.entries()) {
    if (size === 2) view.setUint16(at * 2, value, encoding.endsWith('le'));
    else view.setUint32(at * 4, value, encoding.endsWith('le'));
  }
  return new Uint8Array(view.buffer);
};

const decoded = (bytes: Uint8Array, encoding: Encoding): string => {
  if (!encoding.startsWith('utf-32')) return new TextDecoder(encoding).decode(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return String.fromCodePoint(...Array.from({ length: bytes.byteLength / 4 }, (_, at) => view.getUint32(at * 4, encoding.endsWith('le'))));
};

/** The bytes cut at each of `cuts` (in any order, repeated or out of range: sorted and clamped). */
const cutAt = (bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] => {
  const points = [...new Set(cuts.map((cut) => Math.min(cut, bytes.byteLength)))].sort((a, b) => a - b);
  return [0, ...points].map((start, index) => bytes.slice(start, points[index] ?? bytes.byteLength));
};

const joinedBytes = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
};

const redactedBytes = async (chunks: readonly Uint8Array[], secret: string): Promise<Uint8Array> =>
  new Uint8Array(await new Response(redactedStream(bytesStreamOf(chunks), secret)).arrayBuffer());

/**
 * The secret's occurrences in `text` as a naive search finds them: each run of occurrences that begin inside the one before
 * is one `[redacted]`; occurrences that only touch are one each.
 */
function naive(text: string, secret: string): string {
  let out = '';
  for (let at = 0; at < text.length; ) {
    if (!text.startsWith(secret, at)) {
      out += text[at++];
      continue;
    }
    let end = at + secret.length;
    for (let next = at + 1; next < end; next++) if (text.startsWith(secret, next)) end = next + secret.length;
    out += '[redacted]';
    at = end;
  }
  return out;
}

describe('passing an answer on', () => {
  it('redacts the credential wherever it falls, split across chunks or not, and keeps everything else', async () => {
    const secret = 'ghs_SECRETsecret';
    for (const chunks of [[`a${secret}b`], ['a ghs_SEC', 'RETsecret b', secret], ['ghs_', 'SECRET', 'secret', ''], ['ghs_SECRETsecre', 'x']]) {
      const text = await new Response(redactedStream(streamOf(chunks), secret)).text();
      expect(text).not.toContain(secret);
      expect(text).toBe(chunks.join('').replaceAll(secret, '[redacted]'));
    }
  });

  it('redacts the credential written in UTF-16 or UTF-32 of either byte order, with or without a byte order mark, and keeps the body decodable', async () => {
    const secret = 'ghs_SECRETsecret';
    const written = (text: string, encoding: 'utf-16le' | 'utf-16be' | 'utf-32le' | 'utf-32be'): Uint8Array => {
      const size = encoding.startsWith('utf-16') ? 2 : 4;
      const view = new DataView(new ArrayBuffer(text.length * size));
      for (let at = 0; at < text.length; at++) {
        if (size === 2) view.setUint16(at * 2, text.charCodeAt(at), encoding.endsWith('le'));
        else view.setUint32(at * 4, text.charCodeAt(at), encoding.endsWith('le'));
      }
      return new Uint8Array(view.buffer);
    };
    for (const encoding of ['utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'] as const) {
      for (const text of [`{"echo":"Bearer ${secret}"}`, `\ufeff${secret}${secret}`]) {
        const bytes = written(text, encoding);
        // Split inside the secret, at an odd byte: the held-back bytes carry it over.
        const cut = written(text.slice(0, text.indexOf(secret) + 3), encoding).byteLength + 1;
        const source = bytesStreamOf([bytes.slice(0, cut), bytes.slice(cut)]);
        const out = new Uint8Array(await new Response(redactedStream(source, secret)).arrayBuffer());
        expect(out).toEqual(written(text.replaceAll(secret, '[redacted]'), encoding));
      }
    }
  });

  it('redacts a credential with a character of ISO-8859-1 where an upstream echoes it as the header carried it, one byte, split anywhere', async () => {
    // fetch sends `ä` in a header as the byte E4, not UTF-8's C3 A4: an upstream that writes the header's bytes back wrote
    // the credential whole.
    const latin1 = (text: string) => Uint8Array.from(text, (character) => character.charCodeAt(0));
    // U+0080, the first character a header carries as one byte that is not ASCII, too.
    for (const secret of ['p\u00e4ssword', 'p\u0080ssword']) {
      const bytes = latin1(`Authorization: Bearer ${secret}\r\n`);
      for (let cut = 0; cut <= bytes.byteLength; cut++) {
        const out = new Uint8Array(await new Response(redactedStream(bytesStreamOf([bytes.slice(0, cut), bytes.slice(cut)]), secret)).arrayBuffer());
        expect({ cut, secret, out }).toEqual({ cut, secret, out: latin1('Authorization: Bearer [redacted]\r\n') });
      }
    }
  });

  it('keeps a JSON body valid, at both levels, where it holds the credential escaped twice (JSON in a JSON string), split anywhere', async () => {
    // Each begins with a character an encoder escapes as \uXXXX (Go and Rails `<` and `&`, .NET `"`): once escaped, the
    // form begins with `\`, and escaped again a `\` stands before it, which a lone `[redacted]` would leave dangling.
    const escaped = (characters: string, capitals: boolean) => (text: string) =>
      [...text]
        .map((c) => (characters.includes(c) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')[capitals ? 'toUpperCase' : 'toLowerCase']()}` : c))
        .join('');
    const encoders = [
      (value: string) => JSON.stringify({ token: value }),
      (value: string) => `{"token":"${escaped('<>&', false)(JSON.stringify(value).slice(1, -1))}"}`,
      (value: string) => `{"token":"${escaped('"&\'+<>`', true)(value)}"}`,
    ];
    for (const secret of ['<s3cr3t/value', '&s3cr3t', '"s3cr3t+x', 'plain-s3cr3t']) {
      for (const inner of encoders.map((encode) => encode(secret))) {
        expect(JSON.parse(inner)).toEqual({ token: secret });
        const body = JSON.stringify({ log: inner, again: [inner] });
        for (let cut = 0; cut <= body.length; cut++) {
          const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
          const outer = JSON.parse(text) as { log: string; again: string[] };
          expect(JSON.parse(outer.log), `${text} cut at ${cut}`).toEqual({ token: '[redacted]' });
          expect(JSON.parse(outer.again[0]!), `${text} cut at ${cut}`).toEqual({ token: '[redacted]' });
        }
      }
    }
  });

  it('finds a credential with an escape inside escaped twice: a base64 secret whose / PHP writes as \\/, in JSON quoted in JSON', async () => {
    const secret = 'c2Vj/cmV0+c2Vj=';
    const once = `{"token":"${secret.replaceAll('/', '\\/')}"}`;
    const body = JSON.stringify({ error: `upstream said ${once}` });
    const text = await new Response(redactedStream(streamOf([body]), secret)).text();
    expect(text).toBe(JSON.stringify({ error: 'upstream said {"token":"[redacted]"}' }));
  });

  it('finds the credential escaped twice as each encoder writes JSON: PHP writes the \\/ of a PHP answer as \\\\\\/', async () => {
    const php = (value: unknown) => JSON.stringify(value).replaceAll('/', '\\/');
    const go = (value: unknown) => JSON.stringify(value).replaceAll('<', '\\u003c');
    const secret = '<c2Vj/cmV0+c2Vj=';
    // json_encode(['error' => json_encode(['token' => $secret])]), and a PHP log of a Go service's answer.
    for (const inner of [php({ token: secret }), go({ token: secret })]) {
      const body = php({ error: inner });
      expect(JSON.parse(JSON.parse(body).error)).toEqual({ token: secret });
      for (let cut = 0; cut <= body.length; cut++) {
        const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
        expect(JSON.parse(JSON.parse(text).error), `${text} cut at ${cut}`).toEqual({ token: '[redacted]' });
      }
    }
  });

  it('keeps an escaped backslash before the credential as it is: only an escape that begins it is taken with it', async () => {
    // `\\u003cs` in a JSON string: a backslash, then the credential `<s`: the pair stays, the credential goes.
    const text = await new Response(redactedStream(streamOf(['{"a":"x\\\\\\u003cs3cr3t"}']), '<s3cr3t')).text();
    expect(text).toBe('{"a":"x\\\\[redacted]"}');
    expect(JSON.parse(text)).toEqual({ a: 'x\\[redacted]' });
  });

  it('redacts the credential split at any byte, the longest way it is written (UTF-32) included', async () => {
    const secret = 'ghs_SECRETsecret';
    const utf32 = (text: string): Uint8Array => {
      const view = new DataView(new ArrayBuffer(text.length * 4));
      for (let at = 0; at < text.length; at++) view.setUint32(at * 4, text.charCodeAt(at), true);
      return new Uint8Array(view.buffer);
    };
    const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
    // At the start of the body too: after a character, UTF-32LE read a byte later is UTF-32BE, whose form of it matches first.
    for (const [written, text] of [utf8, utf32].flatMap((encoding) => [`${secret}b`, `a${secret}b`].map((text) => [encoding, text] as const))) {
      const bytes = written(text);
      for (let cut = 1; cut < bytes.byteLength; cut++) {
        const source = bytesStreamOf([bytes.slice(0, cut), bytes.slice(cut)]);
        const out = new Uint8Array(await new Response(redactedStream(source, secret)).arrayBuffer());
        expect({ cut, out }).toEqual({ cut, out: written(text.replaceAll(secret, '[redacted]')) });
      }
    }
  });

  it('redacts a credential longer than 64 bytes split at any byte, its search built for the one answer, past its first 64 bytes too', async () => {
    // A keyway JWT's shape: base64url parts, each byte one some needle holds, so the run of them before a cut is longer than
    // the bytes whose starts are compared with the needles where the search is built lazily.
    const secret = `eyJhbGciOiJFUzI1NiJ9.${'eyJzdWIiOiJyZXBvOmFjbWUvYXBpIn0'.repeat(3)}.c2lnbmF0dXJl_-`;
    const bytes = new TextEncoder().encode(`{"echo":"${secret}"}`);
    for (let cut = 1; cut < bytes.byteLength; cut++) {
      const out = await new Response(redactedStream(bytesStreamOf([bytes.slice(0, cut), bytes.slice(cut)]), secret)).text();
      expect({ cut, out }).toEqual({ cut, out: '{"echo":"[redacted]"}' });
    }
  });

  it('replaces the credential escaped twice where an odd run of backslashes stands before it, closing that pair', async () => {
    // Not what an encoder writes, but what an upstream may (a raw value beside an escaped one): the run's last `\` escapes
    // the needle's first. Passed over, the credential was left whole: `x\\\/ab\\/cd` reads `x\/ab\/cd`, and that `x/ab/cd`.
    for (const [secret, body] of [
      ['/ab/cd', '{"e":"x\\\\\\/ab\\\\/cd"}'],
      ['<a>', '{"e":"x\\\\\\u003ca\\\\u003e"}'],
    ] as const) {
      for (let cut = 0; cut <= body.length; cut++) {
        const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
        expect(text, `cut at ${cut}`).toBe('{"e":"x\\\\[redacted]"}');
        expect(JSON.parse(text)).toEqual({ e: 'x\\[redacted]' });
      }
    }
  });

  it('closes that pair where the run of backslashes began in a chunk passed on before, split anywhere', async () => {
    // Forty escaped backslashes, then the run's last one and the needle: longer than the bytes held back, so that a cut
    // in the run left its start passed on, and the pair was not closed: `\[redacted]`, which no JSON reader takes.
    const body = `{"e":"x${'\\\\'.repeat(40)}\\\\\\/ab\\\\/cd"}`;
    for (let cut = 0; cut <= body.length; cut++) {
      const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), '/ab/cd')).text();
      expect(JSON.parse(text), `cut at ${cut}`).toEqual({ e: `x${'\\'.repeat(40)}\\[redacted]` });
    }
  });

  it('keeps what only looks like the credential, and redacts a JSON-escaped one whole, so the body still decodes', async () => {
    const secret = 'ghs_SECRETsecret';
    // The credential but for one character, each place: kept as it is.
    const nearly = [...secret].map((_, at) => `${secret.slice(0, at)}#${secret.slice(at + 1)}`).join(' ');
    expect(await new Response(redactedStream(streamOf([nearly]), secret)).text()).toBe(nearly);
    // A credential that ends with a backslash is also the start of how JSON writes it (`\\`): that longer form goes whole.
    const slashed = 'ghs_SECRET\\';
    const json = JSON.stringify({ credential: `Bearer ${slashed}` });
    expect(JSON.parse(await new Response(redactedStream(streamOf([json]), slashed)).text())).toEqual({ credential: 'Bearer [redacted]' });
  });

  it('replaces the whole of an occurrence inside which a shorter form begins and ends, split anywhere', async () => {
    // `"\` as JSON writes it, then as JSON quoted in JSON writes it: the second, `\\\"\\\\`, holds the first from its third
    // byte to two bytes before its end, and is replaced whole all the same.
    const secret = '"\\';
    const once = JSON.stringify(secret).slice(1, -1);
    const body = `${once}${JSON.stringify(once).slice(1, -1)}`;
    for (let cut = 0; cut <= body.length; cut++) {
      const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
      expect({ cut, text }).toEqual({ cut, text: '[redacted][redacted]' });
    }
  });

  it('keeps a JSON body valid where the credential ends with a backslash, split anywhere: its JSON form is it and one more', async () => {
    // `ghs_SECRET\` written in JSON is `ghs_SECRET\\`: cut after the first `\`, the credential as it is was replaced
    // before the next chunk showed the longer form, and its second `\` was left to escape the string's closing quote.
    const secret = 'ghs_SECRET\\';
    const body = JSON.stringify({ credential: `Bearer ${secret}`, again: [secret] });
    for (let cut = 0; cut <= body.length; cut++) {
      const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
      expect(text, `cut at ${cut}`).toBe(JSON.stringify({ credential: 'Bearer [redacted]', again: ['[redacted]'] }));
    }
  });

  it('redacts a credential with characters beyond ASCII where an encoder writes them as \\uXXXX, small or capital hex, a surrogate pair beyond U+FFFF, once or twice', async () => {
    // Python's json.dumps and PHP's json_encode (small hex digits), .NET's System.Text.Json (capital ones) write every
    // character beyond ASCII so: a static secret's `ä` came back as `\u00e4`, which no needle was.
    const beyondAscii = (capitals: boolean) => (json: string) =>
      json.replace(/[\u0080-\uffff]/g, (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')[capitals ? 'toUpperCase' : 'toLowerCase']()}`);
    const encoders = {
      python: (value: unknown) => beyondAscii(false)(JSON.stringify(value)),
      php: (value: unknown) => beyondAscii(false)(JSON.stringify(value)).replaceAll('/', '\\/'),
      dotnet: (value: unknown) => beyondAscii(true)(JSON.stringify(value)),
    };
    // U+0080, the first character beyond ASCII, too.
    for (const secret of ['p\u00e4ssw\u00f6rd', 'k\u20ac/y\u{1f600}z', '\u00e9t\u00e9', 'k\u0080y']) {
      for (const [name, encode] of Object.entries(encoders)) {
        const once = encode({ token: secret });
        expect(once).not.toMatch(/[\u0080-\uffff]/);
        for (const body of [once, encode({ log: once })]) {
          for (let cut = 0; cut <= body.length; cut++) {
            const text = await new Response(redactedStream(streamOf([body.slice(0, cut), body.slice(cut)]), secret)).text();
            const read = JSON.parse(text) as { token?: string; log?: string };
            expect(read.token ?? (JSON.parse(read.log!) as { token: string }).token, `${name}: ${text} cut at ${cut}`).toBe('[redacted]');
          }
        }
      }
    }
  });

  it('redacts every occurrence of a secret over a small alphabet as a naive search does, overlapping ones as one, in any chunks and encoding', async () => {
    // `abab` stands in `ababab` at 0 and at 2. Resumed past the first, the search passed the second's end on: `[redacted]ab`,
    // and the end of a secret whose end repeats its start tells the rest of it.
    expect(naive('xababab', 'abab')).toBe('x[redacted]');
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 6 }),
        fc.string({ unit: fc.constantFrom('a', 'b'), maxLength: 40 }),
        fc.array(fc.nat({ max: 170 }), { maxLength: 6 }),
        fc.constantFrom<Encoding>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'),
        async (secret, text, cuts, encoding) => {
          const out = await redactedBytes(cutAt(encoded(text, encoding), cuts), secret);
          expect(out).toEqual(encoded(naive(text, secret), encoding));
        },
      ),
      { seed: 20261207, numRuns: 4000 },
    );
  });

  it('leaves no occurrence in one byte order that overlaps one in another by its zeros, and keeps UTF-16 text aligned, wherever it is cut', async () => {
    // UTF-16LE's `S` ends with a zero and UTF-16BE's begins with one: written so that they share it, the first was
    // replaced, and the second, begun inside it, was passed on whole after the replacement's own last zero.
    const secret = 'ghs_SECRETsecret';
    const readable = (bytes: Uint8Array): string => new TextDecoder('latin1').decode(bytes.filter((byte) => byte !== 0));
    const overlapping: [Encoding, Encoding, number][] = [
      ['utf-16le', 'utf-16be', 1],
      ['utf-32le', 'utf-32be', 1],
      ['utf-32le', 'utf-32be', 3],
      ['utf-32le', 'utf-16be', 1],
      ['utf-16le', 'utf-32be', 1],
    ];
    for (const [first, second, shared] of overlapping) {
      const body = joinedBytes([encoded(secret, first), encoded(secret, second).subarray(shared), encoded('}', 'utf-8')]);
      for (let cut = 0; cut <= body.byteLength; cut++) {
        const out = readable(await redactedBytes(cutAt(body, [cut]), secret));
        expect(out, `${first} then ${second}, cut at ${cut}`).toBe('[redacted]}');
      }
    }
    // Where the two only meet in text of one encoding (UTF-16BE's `S` a byte before UTF-16LE's, or inside two of them),
    // each occurrence is one `[redacted]` and the text stays as it was written.
    for (const encoding of ['utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'] as const) {
      const text = encoded(`{"echo":"x${secret}${secret}y"}`, encoding);
      for (let cut = 0; cut <= text.byteLength; cut++) {
        expect(await redactedBytes(cutAt(text, [cut]), secret), `${encoding}, cut at ${cut}`).toEqual(encoded('{"echo":"x[redacted][redacted]y"}', encoding));
      }
    }
  });

  it('closes the pair alike wherever a body in UTF-16 or UTF-32 is cut, inside a unit of a long run of backslashes too', async () => {
    // A cut inside a unit of the run (an odd byte of UTF-16) lost the run's count at the next chunk's start: taken as
    // even, and 0.3% of random cuts left a lone `\`, which no JSON reader takes.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 90 }),
        fc.constantFrom<Encoding>('utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'),
        fc.array(fc.nat({ max: 600 }), { minLength: 1, maxLength: 8 }),
        async (run, encoding, cuts) => {
          const bytes = encoded(`{"e":"x${'\\'.repeat(run)}\\\\\\/ab\\\\/cd"}`, encoding);
          const whole = await redactedBytes([bytes], '/ab/cd');
          expect(JSON.parse(decoded(whole, encoding))).toHaveProperty('e');
          expect(await redactedBytes(cutAt(bytes, cuts), '/ab/cd')).toEqual(whole);
        },
      ),
      { seed: 1207, numRuns: 3000 },
    );
  });

  it('passes each piece of a streamed answer on as it comes, holding back only what could begin the credential', async () => {
    // The last bytes of each piece, as many as the longest way the credential is written less one (UTF-32: 63 here), were
    // held back whether or not they could begin it: an event of a stream of server-sent events reached the caller only
    // with the next one, and each piece's held bytes were read again with it.
    const secret = 'ghs_SECRETsecret';
    // A piece that ends with the whole credential is passed on whole: nothing of it can begin a longer occurrence.
    const pieces = ['data: {"n":1}\n\n', 'data: {"n":2}\n\ndata: ghs_', `SECRETsecret\n\n`, 'data: {"n":3}\n\ndata: ghs_SECRETsecret', '\n\n'];
    const reader = redactedStream(streamOf(pieces), secret).getReader();
    const passed: string[] = [];
    for (let read = await reader.read(); !read.done; read = await reader.read()) passed.push(new TextDecoder().decode(read.value));
    expect(passed).toEqual(['data: {"n":1}\n\n', 'data: {"n":2}\n\ndata: ', '[redacted]\n\n', 'data: {"n":3}\n\ndata: [redacted]', '\n\n']);
  });

  it('passes on a piece that is only a replacement as bytes of its own: a reader that transfers them empties no later answer', async () => {
    // `[redacted]` and `\\` are shared by every answer's search; a piece that was the credential alone came out as the shared
    // bytes themselves, and a reader that detached their buffer (a transfer) left every later replacement empty.
    for (let answer = 0; answer < 3; answer++) {
      const reader = redactedStream(streamOf(['ghs_SECRETsecret']), 'ghs_SECRETsecret').getReader();
      const read = await reader.read();
      expect(read.done || new TextDecoder().decode(read.value)).toBe('[redacted]');
      if (!read.done) structuredClone(read.value.buffer, { transfer: [read.value.buffer] });
      expect((await reader.read()).done).toBe(true);
    }
  });

  it('redacts a credential of one to three bytes wherever it stands and however it is cut', async () => {
    for (const secret of ['k', 'k9', 'k9z', '\u00e4', '\u20ac', 'z\u00e4']) {
      for (const encoding of ['utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'] as const) {
        for (const text of [secret, `${secret}x`, `x${secret}`, `a${secret}${secret}b${secret}c`]) {
          const bytes = encoded(text, encoding);
          for (let cut = 0; cut <= bytes.byteLength; cut++) {
            const out = await redactedBytes(cutAt(bytes, [cut]), secret);
            expect({ secret, encoding, text, cut, out }).toEqual({
              secret,
              encoding,
              text,
              cut,
              out: encoded(text.replaceAll(secret, '[redacted]'), encoding),
            });
          }
        }
      }
    }
  });

  it('errors, never truncates silently, once the cap is passed, and says why', async () => {
    const end: StreamEnd = { bytes: 0, error: undefined };
    const { stream, ended } = cappedStream(streamOf(['12345', '67890', 'x']), 10, end);
    await expect(new Response(stream).text()).rejects.toThrow(/too_large/);
    await ended;
    expect(end).toEqual({ bytes: 11, error: 'too_large' });
  });
});

// A chunk is redacted 64 KiB at a time (SLICE_BYTES in capped-stream.ts), from its own start: what a cut at a slice's edge
// carries to the next slice (the bytes held back, the `\` run before them, what a replacement already took) must be what
// a chunk boundary carries.
describe('passing an answer on in chunks larger than a slice', () => {
  const SLICE = 64 * 1024;
  const sizeOf = (encoding: Encoding): number => (encoding === 'utf-8' ? 1 : encoding.startsWith('utf-16') ? 2 : 4);
  /** Where two byte arrays first differ, or -1: comparing 200 KB element by element through expect is slow. */
  const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
    let at = 0;
    while (at < Math.min(a.byteLength, b.byteLength) && a[at] === b[at]) at++;
    return at === a.byteLength && at === b.byteLength ? -1 : at;
  };

  it('redacts as a naive search does where occurrences straddle each multiple of 64 KiB from a chunk start, overlapping ones as one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 6 }),
        fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 7 }),
        fc.constantFrom<Encoding>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'),
        fc.nat({ max: 300 }),
        fc.array(fc.nat({ max: 8 }), { minLength: 3, maxLength: 3 }),
        async (secret, filler, encoding, lead, backs) => {
          const size = sizeOf(encoding);
          // A first chunk of `lead` bytes, then one of three slices and more: its slices' edges are `lead` + k·64 KiB.
          const chars = Math.ceil((lead + 3 * SLICE + 100) / size);
          const text = [...filler.repeat(Math.ceil(chars / filler.length)).slice(0, chars)];
          for (const [k, back] of backs.entries()) {
            const start = Math.floor((lead + (k + 1) * SLICE) / size) - Math.min(back, secret.length);
            text.splice(start, secret.length, ...secret);
          }
          const written = text.join('');
          const bytes = encoded(written, encoding);
          const out = await redactedBytes([bytes.slice(0, lead), bytes.slice(lead)], secret);
          expect(firstDifference(out, encoded(naive(written, secret), encoding))).toBe(-1);
        },
      ),
      { seed: 20261208, numRuns: 100 },
    );
  });

  // Each automaton is built only where a text needs it: the backward one where as many bytes as the shortest needle stand
  // one after the other, each a byte of a needle; the forward one where a chunk or a slice ends with a byte a needle has
  // before its last. Spaces and braces, which no needle holds, cut the text and end some chunks and slices.
  it('redacts as a naive search does where bytes no needle holds cut the text and end chunks and slices, cut anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 6 }),
        fc.string({ unit: fc.constantFrom('a', 'b', ' ', '}'), minLength: 1, maxLength: 9 }),
        fc.constantFrom<Encoding>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'),
        fc.array(fc.nat({ max: 2 * SLICE + 200 }), { maxLength: 4 }),
        fc.array(fc.nat({ max: 8 }), { minLength: 2, maxLength: 2 }),
        async (secret, filler, encoding, cuts, backs) => {
          const size = sizeOf(encoding);
          const chars = Math.ceil((2 * SLICE + 200) / size);
          const text = [...filler.repeat(Math.ceil(chars / filler.length)).slice(0, chars)];
          for (const [k, back] of backs.entries()) {
            const start = Math.floor(((k + 1) * SLICE) / size) - Math.min(back, secret.length);
            text.splice(start, secret.length, ...secret);
          }
          const written = text.join('');
          const bytes = encoded(written, encoding);
          expect(firstDifference(await redactedBytes(cutAt(bytes, cuts), secret), encoded(naive(written, secret), encoding))).toBe(-1);
        },
      ),
      { seed: 20261209, numRuns: 150 },
    );
  });

  it('closes the pair where a run of backslashes, or the escaped credential after it, straddles a slice edge', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 90 }),
        fc.constantFrom<Encoding>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'),
        fc.nat({ max: 1000 }),
        async (pairs, encoding, cut) => {
          // An escaped `\` run, a raw `\` and the credential escaped twice (`\\/ab\\/cd`): the first slice's edge falls in it.
          const tail = `x${'\\\\'.repeat(pairs)}\\\\\\/ab\\\\/cd"}`;
          const padding = Math.floor(SLICE / sizeOf(encoding)) - (cut % (tail.length + 1)) - '{"p":"","e":"'.length;
          const body = `{"p":"${'q'.repeat(padding)}","e":"${tail}`;
          const out = decoded(await redactedBytes([encoded(body, encoding)], '/ab/cd'), encoding);
          expect(JSON.parse(out)).toEqual({ p: 'q'.repeat(padding), e: `x${'\\'.repeat(pairs)}\\[redacted]` });
        },
      ),
      { seed: 1208, numRuns: 400 },
    );
  });

  it('leaves no occurrence in one byte order that overlaps one in another by its zeros where a slice edge cuts them', async () => {
    const secret = 'ghs_SECRETsecret';
    const readable = (bytes: Uint8Array): string => new TextDecoder('latin1').decode(bytes.filter((byte) => byte !== 0));
    for (const [first, second, shared] of [
      ['utf-16le', 'utf-16be', 1],
      ['utf-32le', 'utf-32be', 1],
      ['utf-32le', 'utf-32be', 3],
      ['utf-32le', 'utf-16be', 1],
      ['utf-16le', 'utf-32be', 1],
    ] as const) {
      const body = joinedBytes([encoded(secret, first), encoded(secret, second).subarray(shared), encoded('}', 'utf-8')]);
      for (let edge = 0; edge <= body.byteLength; edge++) {
        const padded = joinedBytes([new Uint8Array(SLICE - edge).fill(0x7a), body]);
        expect(readable(await redactedBytes([padded], secret)), `${first} then ${second}, slice edge at ${edge}`).toBe(
          `${'z'.repeat(SLICE - edge)}[redacted]}`,
        );
      }
    }
  });
});

// Nodes are numbered in 16 bits where an automaton has 65,536 nodes or fewer (its arrays' length, one more than the needles'
// bytes): at the edge, the last node made (the end of the shortest needle, put in last) is numbered 65,534 or so.
describe('a search of about 65,536 nodes', () => {
  const Q = 0x51;
  for (const [secret, nodes, numbers] of [
    [`${'\u00e9'.repeat(41)}/+`, 65_535, Uint16Array],
    [`${'a'.repeat(194)}${'\u20ac'.repeat(23)}/`, 65_536, Uint16Array],
    [`${'a'.repeat(321)}+\t\u{1f600}`, 65_537, Int32Array],
  ] as const) {
    it(`finds each of its needles whole, cut anywhere, and keeps each less its last byte: ${nodes} nodes`, async () => {
      const redaction = redactionOf(secret)!;
      expect([redaction.forward().only.length, redaction.backward().only.length]).toEqual([nodes, nodes]);
      expect([redaction.forward().fail, redaction.backward().fail].every((fail) => fail instanceof numbers)).toBe(true);
      const redacted = async (chunks: readonly Uint8Array[]) =>
        new Uint8Array(await new Response(redactedStream(bytesStreamOf(chunks), redaction)).arrayBuffer());
      for (const [index, { bytes, replacement }] of redaction.needles.entries()) {
        const body = joinedBytes([Uint8Array.of(Q), bytes, Uint8Array.of(Q)]);
        for (const cut of [1, 2, bytes.byteLength >> 1, bytes.byteLength]) {
          expect({ index, cut, out: await redacted(cutAt(body, [cut])) }).toEqual({
            index,
            cut,
            out: joinedBytes([Uint8Array.of(Q), replacement, Uint8Array.of(Q)]),
          });
        }
        const nearly = joinedBytes([Uint8Array.of(Q), bytes.subarray(0, -1), Uint8Array.of(Q)]);
        expect({ index, out: await redacted([nearly]) }).toEqual({ index, out: nearly });
      }
    });
  }

  it('finds each needle of a secret whose written forms part at every length, alone or cut anywhere', async () => {
    // Each style escapes other characters, each at its own place: the needles share prefixes of many lengths, and the
    // trie, built longest first, numbers a node's only child next to it.
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom('a', '/', '<', '"', '\u00e9', '+', '\t', '\u20ac', '\\', '&', '=', '\u{1f600}'), minLength: 1, maxLength: 12 }),
        fc.nat(),
        async (secret, at) => {
          const redaction = redactionOf(secret)!;
          for (const { bytes, replacement } of redaction.needles) {
            const body = joinedBytes([Uint8Array.of(Q), bytes, Uint8Array.of(Q)]);
            const out = new Uint8Array(await new Response(redactedStream(bytesStreamOf(cutAt(body, [at % body.byteLength])), redaction)).arrayBuffer());
            expect(out).toEqual(joinedBytes([Uint8Array.of(Q), replacement, Uint8Array.of(Q)]));
          }
        },
      ),
      { seed: 65_536, numRuns: 150 },
    );
  });
});
