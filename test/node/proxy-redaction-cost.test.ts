import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type Redaction, redactedStream, redactionOf } from '../../src/features/proxy/capped-stream.ts';
import { cpuMsSince } from './cpu-time.ts';

// The cost of redaction on the thread that serves every request: Node's, where the process's CPU time can be read (in
// workerd performance.now() moves only on I/O, so a unit test there cannot time it).
describe('redacting a proxied answer', () => {
  /** How long redacting `count` copies of `chunk` takes, in CPU time, and how many bytes come out. */
  const timedRedaction = async (chunk: Uint8Array, count: number, secret: string | Redaction) => {
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let n = 0; n < count; n++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const started = process.cpuUsage();
    const out = await new Response(redactedStream(source, secret)).arrayBuffer();
    return { ms: cpuMsSince(started), bytes: out.byteLength };
  };

  // A keyway JWT is minted for its one request, so its search is made for its one answer: both automata of its needles
  // (a 1 KB JWT in five encodings, 13,000 nodes each) were built for every answer, 0.8 ms here: 7-8 times as long as a
  // small JSON answer for a secret prepared once. Built only where an answer could hold a needle or ends along one, 1.5-2.5.
  // An answer in chunks cut inside words had the forward automaton built to tell whether a chunk ends along a needle: 5.5
  // to 7 times as long. The needles' starts compared with the word's end there, under 3.
  it("redacts a JSON answer for a credential of its one request, a keyway JWT's, at most a few times as long as for one prepared once", async () => {
    const jwt = () => `${randomBytes(27).toString('base64url')}.${randomBytes(700).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
    const listing = JSON.stringify(
      Array.from({ length: 12 }, (_, id) => ({ id, full_name: `acme/repo-${id}`, html_url: `https://github.com/acme/repo-${id}`, private: false })),
    );
    // Cut inside `acme`: each chunk but the last ends with `ac`.
    const [first, second] = [listing.indexOf('acme/repo-4') + 2, listing.indexOf('acme/repo-9') + 2];
    for (const pieces of [['{"ok":true}'], [listing], [listing.slice(0, first), listing.slice(first, second), listing.slice(second)]]) {
      const body = pieces.join('');
      const chunks = pieces.map((piece) => new TextEncoder().encode(piece));
      /** The CPU time of 200 answers, each redacted for a secret of its own or for one prepared once. */
      const answersMs = async (secrets: () => string | ReturnType<typeof redactionOf>) => {
        const started = process.cpuUsage();
        for (let n = 0; n < 200; n++) {
          const source = new ReadableStream<Uint8Array>({
            start(controller) {
              for (const chunk of chunks) controller.enqueue(chunk);
              controller.close();
            },
          });
          expect(await new Response(redactedStream(source, secrets())).text()).toBe(body);
        }
        return cpuMsSince(started);
      };
      const tokens = Array.from({ length: 1000 }, jwt);
      const prepared = redactionOf(tokens[0]!);
      let next = 0;
      const own: number[] = [];
      const once: number[] = [];
      for (let round = 0; round < 5; round++) {
        own.push(await answersMs(() => tokens[next++ % tokens.length]!));
        once.push(await answersMs(() => prepared));
      }
      expect(Math.min(...own) / Math.min(...once)).toBeLessThan(4);
    }
  });

  // A static secret's search is prepared at start, its forward automaton with it. A chunk that ended with a short run of
  // bytes needles hold had its end compared with each needle's start all the same, and the needles of a secret of many
  // written forms (348 here) share their first bytes up to the first character an encoder escapes: 1 MiB in 65-byte
  // chunks, each ending along the secret's first 63 characters, held the thread for 16 s here (read along the automaton,
  // 0.3 s), and 32 KiB took 25 to 45 times as long as chunks that end with a byte no needle holds (read so, about as long).
  it('redacts chunks that end along a prepared secret of many written forms about as fast as chunks that end otherwise', async () => {
    const prepared = redactionOf(`${'a'.repeat(100)}"/<&='+\`\t\u00e9\u2028b`)!;
    // `"` stands before the last byte of some needle, `~` in none: a chunk that ends with it cannot end along one.
    const chunkEndingWith = (last: string) => new TextEncoder().encode(`~${'a'.repeat(63)}${last}`);
    const redactionMs = async (chunk: Uint8Array) => {
      const { ms, bytes } = await timedRedaction(chunk, 512, prepared);
      expect(bytes).toBe(512 * chunk.byteLength);
      return ms;
    };
    const along: number[] = [];
    const otherwise: number[] = [];
    for (let round = 0; round < 5; round++) {
      along.push(await redactionMs(chunkEndingWith('"')));
      otherwise.push(await redactionMs(chunkEndingWith('~')));
    }
    expect(Math.min(...along) / Math.min(...otherwise)).toBeLessThan(3);
  });

  // A base64 secret has four written forms (as it is, and `/`, `=` and `+` as PHP, Gson and .NET escape them in JSON), each
  // in five encodings: twenty needles in each chunk. Each looked for over the whole body byte by byte, 16 MiB took 1-1.4 s
  // here of the thread that serves every request; read once, the needles compared where a byte one begins with stands, 0.3 s.
  it('redacts an answer of the default cap, 16 MiB, about as fast for a secret of many written forms as for one of one', async () => {
    const chunk = new TextEncoder().encode(`{"line":"${'artifact bytes '.repeat(4)}"}\n`.repeat(1024).slice(0, 64 * 1024));
    const redactionMs = async (secret: string) => {
      const { ms, bytes } = await timedRedaction(chunk, 256, secret);
      expect(bytes).toBe(256 * chunk.byteLength);
      return ms;
    };
    // Rounds in turn, the fastest of each: a neighbour's load slows both alike. Each form looked for on its own, the
    // twenty needles took 2.3-3.8 times as long as the five of a secret JSON writes one way; read once, 0.5-1.9 times.
    const many: number[] = [];
    const one: number[] = [];
    for (let round = 0; round < 5; round++) {
      many.push(await redactionMs('c2VjcmV0/c2VjcmV0+c2VjcmV0=='));
      one.push(await redactionMs('c2VjcmV0c2VjcmV0c2VjcmV0'));
    }
    expect(Math.min(...many) / Math.min(...one)).toBeLessThan(2.2);
  });

  // An answer that echoes the credential in every line (a log, a listing of what was sent): each match in a chunk used to
  // join the chunk's pieces two by two, copying what came before again, so that a 64 KiB chunk of eight-byte secrets
  // copied a quarter of a GiB: 1 MiB took 1.3 s here, 50 times an answer of the same size without it.
  it('redacts an answer that holds the credential thousands of times in each chunk about as fast as one that holds it nowhere', async () => {
    const secret = 'c2VjcmV0';
    const lines = (word: string) => new TextEncoder().encode(`${word} `.repeat(8192).slice(0, 64 * 1024));
    const redactionMs = async (chunk: Uint8Array) => (await timedRedaction(chunk, 16, secret)).ms;
    // The same bytes but the last of each word: as many places where a needle could begin, none where one does.
    const full: number[] = [];
    const none: number[] = [];
    for (let round = 0; round < 5; round++) {
      full.push(await redactionMs(lines(secret)));
      none.push(await redactionMs(lines('c2VjcmVX')));
    }
    // Joined once, 1.2 times as long here.
    expect(Math.min(...full) / Math.min(...none)).toBeLessThan(8);
  });

  // Zeros begin every needle in UTF-16 and UTF-32 big-endian, a letter every one of a secret that begins with it: with
  // the needles found by their first byte, each was compared at every byte of an answer of that byte repeated (an
  // artifact of zeros), and 16 MiB held the thread for 1.6 s here (3.2 s for a secret of many written forms), five
  // times an answer of text. Read once, from the end back along the needles reversed, none is compared there (an answer
  // of the secret's last byte repeated, where the needles end, took 2.5 times an answer of text).
  it('redacts an answer of one byte repeated, zeros or the first of the secret, about as fast as one of text', async () => {
    // Prepared once, as a static secret's search is: what is timed is reading the answer, not building the search.
    const secret = redactionOf('c2VjcmV0/c2VjcmV0+c2VjcmV0==') as Redaction;
    const redactionMs = async (chunk: Uint8Array) => (await timedRedaction(chunk, 64, secret)).ms;
    // Lines of the secret's own letters that hold no needle: read along the needles as zeros are (an answer with no run of
    // the needles' bytes as long as the shortest needle is not read along them at all, and would time only the stream).
    const text = new TextEncoder().encode(`${'c2Vj'.repeat(15)}\n`.repeat(1200).slice(0, 64 * 1024));
    const zeros = new Uint8Array(64 * 1024);
    const letters = new Uint8Array(64 * 1024).fill('c'.charCodeAt(0));
    const times = { text: [] as number[], zeros: [] as number[], letters: [] as number[] };
    for (let round = 0; round < 5; round++) {
      times.text.push(await redactionMs(text));
      times.zeros.push(await redactionMs(zeros));
      times.letters.push(await redactionMs(letters));
    }
    // Read once, 1.2 to 1.8 times as long here (the letter 0.6 to 1.3): a byte that ends no needle is passed over at once, a
    // zero moves along the zeros the needles end with. Found by their first byte, 4.5 to 5.5 times a JSON answer's time.
    expect(Math.min(...times.zeros) / Math.min(...times.text)).toBeLessThan(3.5);
    expect(Math.min(...times.letters) / Math.min(...times.text)).toBeLessThan(3.5);
  });

  // Four bytes hold a secret's first character in UTF-32 and nothing more: an answer that repeats that character so
  // written (`00 00 00 63`) had every needle of that encoding, five for each written form, compared at every fourth
  // byte, and 16 MiB held the thread for 1.7 s here for a base64 secret, 2.8 s for one of many written forms, 0.5 s for
  // one of one. Read along a trie of the needles, the bytes the forms share are compared once: 0.35-0.4 s for each.
  it("redacts an answer of the secret's first character repeated in UTF-32 as fast for a secret of many written forms as for one of one", async () => {
    const utf32 = (endian: 'be' | 'le') => {
      const chunk = new Uint8Array(64 * 1024);
      for (let at = endian === 'be' ? 3 : 0; at < chunk.length; at += 4) chunk[at] = 'c'.charCodeAt(0);
      return chunk;
    };
    const redactionMs = async (chunk: Uint8Array, secret: string) => (await timedRedaction(chunk, 64, secret)).ms;
    for (const chunk of [utf32('be'), utf32('le')]) {
      const many: number[] = [];
      const one: number[] = [];
      for (let round = 0; round < 5; round++) {
        many.push(await redactionMs(chunk, 'c2Vj/<>&=\'+"`x'));
        one.push(await redactionMs(chunk, 'c2VjcmV0c2VjcmV0c2VjcmV0'));
      }
      // 3.5-5.6 times as long here compared needle by needle, about 1.1 times along the trie.
      expect(Math.min(...many) / Math.min(...one)).toBeLessThan(2);
    }
  });

  // An upstream that streams its answer in small pieces (a log followed as it is written, server-sent events): each piece
  // was redacted with the last bytes before it read again, as many as the longest needle less one (a 2 KB token's UTF-32,
  // 8 KB) whether or not they could begin one, and 64 KiB in 16-byte pieces took 5 times as long here for such a token as
  // for a 40-character one. Only what could begin a needle waits for the next piece now: 1.1 times.
  it('redacts an answer streamed in small pieces about as fast for a long secret as for a short one', async () => {
    const piece = new TextEncoder().encode('artifact bytes, ');
    const redactionMs = async (secret: string) => {
      const { ms, bytes } = await timedRedaction(piece, 4096, secret);
      expect(bytes).toBe(4096 * piece.byteLength);
      return ms;
    };
    const long: number[] = [];
    const short: number[] = [];
    for (let round = 0; round < 5; round++) {
      long.push(await redactionMs(randomBytes(1536).toString('base64url')));
      short.push(await redactionMs(randomBytes(30).toString('base64url')));
    }
    expect(Math.min(...long) / Math.min(...short)).toBeLessThan(2.5);
  });

  // A secret that repeats itself (`a` forty times, `ab` twenty) in an answer that repeats it: read from each byte where
  // one could begin, along the needles as far as the text follows them, each byte was read forty times, and 16 MiB of
  // `a`s held the thread for 2.9 s here. Read once, each byte followed from where the bytes before it led, 0.45 s.
  it('redacts an answer that repeats a self-repeating secret about as fast as one that only follows the secret as far', async () => {
    const repeated = (unit: string) => new TextEncoder().encode(unit.repeat((64 * 1024) / unit.length));
    const redactionMs = async (chunk: Uint8Array, secret: string) => (await timedRedaction(chunk, 128, secret)).ms;
    // The reference: a secret that overlaps itself nowhere, whose `a`s the answer follows as far but never to its end.
    const times = { none: [] as number[], a: [] as number[], ab: [] as number[] };
    for (let round = 0; round < 5; round++) {
      times.none.push(await redactionMs(repeated('a'), `b${'a'.repeat(39)}`));
      times.a.push(await redactionMs(repeated('a'), 'a'.repeat(40)));
      times.ab.push(await redactionMs(repeated('ab'), 'ab'.repeat(20)));
    }
    // Read once, 3 and 1.8 times as long here; read from each byte, 38 and 19 times.
    expect(Math.min(...times.a) / Math.min(...times.none)).toBeLessThan(6);
    expect(Math.min(...times.ab) / Math.min(...times.none)).toBeLessThan(6);
  });
});
