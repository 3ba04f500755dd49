import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditSource } from '../../src/cli/audit-source.ts';
import type { RemoteDeadlines } from '../../src/cli/broker-fetch.ts';
import { openKeySource } from '../../src/cli/key-source.ts';
import { CliError } from '../../src/cli/command.ts';
import type { AuditLogSource } from '../../src/core/audit/verify-chain.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzY29wZSI6ImF1ZGl0OnJlYWQifQ.c2lnbmF0dXJl';
/** Low, so that the test takes a second or two: an answer read whole in 0.5 s, the export never 0.3 s without a byte. */
const DEADLINES: RemoteDeadlines = { whole: 500, idle: 300 };

/** How one trickling answer went: whether its reader hung up on it. */
interface Trickle {
  cancelled: boolean;
}

/**
 * `start`, then `piece` every `everyMs` (well within the idle deadline), `pieces` times (for ever without), then the end:
 * an answer far below any cap that never arrives in full, or an export that keeps streaming. Without a piece, nothing
 * more after `start`, and no end.
 */
function trickle(start: string, piece?: { readonly text: string; readonly everyMs: number; readonly pieces?: number }): ReadableStream<Uint8Array> {
  const state: Trickle = { cancelled: false };
  trickles.push(state);
  const encoder = new TextEncoder();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(start));
    },
    async pull(controller) {
      if (piece === undefined) return new Promise<void>(() => {});
      if (sent >= (piece.pieces ?? Number.POSITIVE_INFINITY)) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, piece.everyMs));
      if (state.cancelled) return;
      sent += 1;
      controller.enqueue(encoder.encode(piece.text));
    },
    cancel() {
      state.cancelled = true;
    },
  });
}

const trickles: Trickle[] = [];

/** Exit 1 with `message`, within a second or so of the deadline, the trickle hung up on. */
async function expectCutOff(call: () => Promise<unknown>, message: string): Promise<void> {
  const before = trickles.length;
  const started = performance.now();
  const error = await call().then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(CliError);
  expect([(error as CliError).exitCode, (error as Error).message]).toEqual([1, message]);
  expect(performance.now() - started).toBeLessThan(2500);
  expect(trickles.length).toBe(before + 1);
  await expect.poll(() => trickles.at(-1)?.cancelled, { timeout: 2000 }).toBe(true);
}

/**
 * `keyway audit … --url` holds each answer it reads whole to a deadline from the request to its last byte, and the
 * export, which streams for as long as the log is long, to one between any two bytes: a broker (or whatever answers in
 * its place) that trickles cannot hold the command for ever.
 */
describe('keyway audit … --url gives up on an answer that trickles', () => {
  const line = '{"id":"01JEXAMPLE0000000000000000"}\n';
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback((request) => {
      const url = new URL(request.url);
      const json = (body: ReadableStream<Uint8Array>) => new Response(body, { headers: { 'content-type': 'application/json' } });
      // A space every 50 ms: far below any cap, never complete.
      if (url.pathname === '/v1/audit/events') return json(trickle('{"events":[', { text: ' ', everyMs: 50 }));
      if (url.pathname === '/v1/audit/events/01ABC') return json(trickle('{"id":"01ABC"', { text: ' ', everyMs: 50 }));
      // No answer at all, not even its status.
      if (url.pathname === '/v1/audit/stats') return new Promise<Response>(() => {});
      if (url.pathname === '/v1/audit/keys') return Response.json({ keys: [] });
      if (url.pathname === '/v1/audit/shards') return new Response(null, { status: 404 });
      if (url.pathname === '/v1/audit/checkpoints') return Response.json({ checkpoints: [] });
      if (url.pathname === '/v1/audit/export') {
        // Granted records: 20 more lines 50 ms apart (a second, twice the whole-answer deadline), then the end. Any other
        // export: the start of a line, and then nothing.
        const streaming = url.searchParams.get('decision') === 'granted';
        const body = streaming ? trickle(line, { text: line, everyMs: 50, pieces: 20 }) : trickle('{"chain":');
        return new Response(body, { headers: { 'content-type': 'application/x-ndjson' } });
      }
      return new Response(null, { status: 404 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('keyway audit query, explain and stats --url: a page, a record or the stats not in full within the deadline', async () => {
    const source = await openAuditSource({ url: broker.base, token: TOKEN }, DEADLINES);
    await expectCutOff(() => source.query(new URLSearchParams()), 'no complete answer to GET /v1/audit/events within 0.5 s');
    await expectCutOff(() => source.event('01ABC'), 'no complete answer to GET /v1/audit/events/01ABC within 0.5 s');
    // Nor an answer that never begins.
    const started = performance.now();
    await expect(source.stats(new URLSearchParams())).rejects.toThrow(new CliError('no complete answer to GET /v1/audit/stats within 0.5 s', 1));
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('keyway audit export --url: streams past the whole-answer deadline while bytes come, and gives up once none comes', async () => {
    const source = await openAuditSource({ url: broker.base, token: TOKEN }, DEADLINES);
    let exported = '';
    for await (const chunk of source.export(new URLSearchParams({ decision: 'granted' }), 'ndjson')) exported += chunk;
    expect(exported).toBe(line.repeat(21));
    await expectCutOff(async () => {
      for await (const chunk of source.export(new URLSearchParams(), 'ndjson')) expect(chunk).toBe('{"chain":');
    }, 'no byte of the answer to GET /v1/audit/export for 0.3 s');
  });

  it('keyway audit verify --url: an export that stops sending', async () => {
    const source = await openAuditSource({ url: broker.base, token: TOKEN }, DEADLINES);
    const verification = (await source.verification()) as AuditLogSource;
    await expectCutOff(async () => {
      for await (const record of verification.records) expect(record).toBeUndefined();
    }, 'no byte of the answer to GET /v1/audit/export for 0.3 s');
  });
});

/** `keyway keys … --url` holds the key list and a rotation to the same whole-answer deadline. */
describe('keyway keys … --url gives up on a broker that does not answer in full', () => {
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback((request) => {
      const url = new URL(request.url);
      // No answer at all, not even its status.
      if (url.pathname === '/v1/keys') return new Promise<Response>(() => {});
      // A space every 50 ms: far below the 256 KiB cap, never complete.
      if (url.pathname === '/v1/keys/rotate' && request.method === 'POST')
        return new Response(trickle('{"rotated":', { text: ' ', everyMs: 50 }), { headers: { 'content-type': 'application/json' } });
      return new Response(null, { status: 404 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('keyway keys list --url: a broker that never answers', { timeout: 10_000 }, async () => {
    const { source } = await openKeySource(['--url', broker.base, '--token', TOKEN], 'list', DEADLINES);
    const started = performance.now();
    await expect(source.list()).rejects.toThrow(new CliError('no complete answer to GET /v1/keys within 0.5 s', 1));
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('keyway keys rotate --url: a rotation that trickles', { timeout: 10_000 }, async () => {
    const { source } = await openKeySource(['--url', broker.base, '--token', TOKEN], 'rotate', DEADLINES);
    await expectCutOff(() => source.rotate(), 'no complete answer to POST /v1/keys/rotate within 0.5 s');
  });
});
