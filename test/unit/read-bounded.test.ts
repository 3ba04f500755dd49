import { describe, expect, it } from 'vitest';
import { FetchError, readBounded } from '../../src/core/outbound/read-bounded.ts';

/** A body that sends `chunks`, then nothing more, ever: what it was asked for, and whether its reader hung up. */
function stalledBody(chunks: readonly string[]) {
  const seen = { pulls: 0, cancelled: false };
  const queue = chunks.map((chunk) => new TextEncoder().encode(chunk));
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        seen.pulls += 1;
        const next = queue.shift();
        if (next !== undefined) controller.enqueue(next);
        return next === undefined ? new Promise<void>(() => {}) : undefined;
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { body, seen };
}

describe('readBounded', () => {
  it('refuses an answer that declares more than the cap before reading a byte of it, and hangs up on it', async () => {
    const { body, seen } = stalledBody(['{"a":']);
    const response = new Response(body, { headers: { 'content-length': '11' } });
    const refused = await readBounded(response, 10, 'GET https://issuer.example/jwks').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(FetchError);
    expect((refused as FetchError).message).toBe('the answer to GET https://issuer.example/jwks is larger than 10 bytes: not read further');
    expect(seen).toEqual({ pulls: 0, cancelled: true });
  });

  it('reads an answer of exactly the cap, in as many chunks as it comes in', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of ['{"keys":', '[1,2]', '}']) controller.enqueue(new TextEncoder().encode(chunk));
        controller.close();
      },
    });
    const text = await readBounded(new Response(body, { headers: { 'content-length': '14' } }), 14, 'GET https://issuer.example/jwks');
    expect(text).toBe('{"keys":[1,2]}');
  });

  it('reads an answer without a body as empty', async () => {
    expect(await readBounded(new Response(null, { status: 204 }), 10, 'GET https://issuer.example/jwks')).toBe('');
  });
});
