import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryingFetch, type EarlierTry } from '../../src/cli/pipeline/retrying-fetch.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

/** retryingFetch's renewing tries against real loopback servers: what each try is told of the tries before it. */
describe('renewing: what a try is told of the tries before it', () => {
  let unavailable: Awaited<ReturnType<typeof serveOnLoopback>>;
  /** A loopback port nothing listens on: connecting to it is refused, the request never sent. */
  let refused: string;

  beforeAll(async () => {
    unavailable = await serveOnLoopback(() => Response.json({ error: 'temporarily_unavailable' }, { status: 503 }));
    const closed = await serveOnLoopback(() => new Response(null, { status: 204 }));
    refused = closed.base;
    await closed.close();
  });
  afterAll(async () => {
    await unavailable?.close();
  });

  it('a try whose connection was refused sent nothing: the next is told of the try before it (a 503), or of none', async () => {
    const fetch = retryingFetch({ attempts: 4, baseDelayMs: 1, maxDelayMs: 1, attemptTimeoutMs: 5000 }, () => {});
    const told: (EarlierTry | undefined)[] = [];
    const targets = [refused, unavailable.base, refused, unavailable.base];
    const last = await fetch.renewing(async (once, earlier) => {
      told.push(earlier);
      return once(`${targets[told.length - 1]}/token`, { method: 'POST', body: 'subject_token=single-use' });
    });
    expect(last.status).toBe(503);
    expect(told.map((earlier) => earlier?.reason)).toEqual([undefined, undefined, 'answered 503', 'answered 503']);
    expect(told[3]?.answer?.status).toBe(503);
  });
});
