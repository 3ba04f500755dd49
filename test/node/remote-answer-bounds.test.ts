import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openAuditSource } from '../../src/cli/audit-source.ts';
import { ANSWER_BYTES } from '../../src/cli/bounded-answer.ts';
import { cloudCheck } from '../../src/cli/cloud-check.ts';
import { CliError } from '../../src/cli/command.ts';
import { openKeySource } from '../../src/cli/key-source.ts';
import type { AuditLogSource } from '../../src/core/audit/verify-chain.ts';
import { type Flood, floodingBody } from '../support/flooding-body.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzY29wZSI6ImF1ZGl0OnJlYWQifQ.c2lnbmF0dXJl';

/**
 * `{"events":["aaaa…` (or a line of an export that never ends), a 32nd of `cap` a millisecond, past it to half as much
 * again and no further.
 */
function flood(floods: Flood[], cap: number, start: string): ReadableStream<Uint8Array> {
  return floodingBody(floods, { start, chunkBytes: cap / 32, endBytes: 1.5 * cap });
}

/**
 * The commands that read a remote broker (`keyway audit … --url`, `keyway keys … --url`, `keyway cloud check`) read its
 * answers through the same bounded reader as the pipeline side, with a cap for each kind of answer: past it they stop
 * reading, hang up, and exit 1 with the request and the cap in the message.
 */
describe('the commands that read a broker read no answer past its cap', () => {
  const floods: Flood[] = [];
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback((request) => {
      const path = new URL(request.url).pathname;
      const json = (cap: number, start: string) => new Response(flood(floods, cap, start), { headers: { 'content-type': 'application/json' } });
      if (path === '/v1/audit/events') return json(ANSWER_BYTES.page, '{"events":["');
      if (path === '/v1/audit/events/01ABC') return json(ANSWER_BYTES.record, '{"id":"');
      if (path === '/v1/keys') return json(ANSWER_BYTES.small, '{"keys":["');
      if (path === '/v1/keys/rotate') return new Response(flood(floods, ANSWER_BYTES.small, '{"error":"'), { status: 500 });
      if (path === '/.well-known/openid-configuration') return json(ANSWER_BYTES.small, '{"issuer":"');
      // What `audit verify --url` reads of a broker with one chain: its keys, no shards, no checkpoints, and an export
      // whose first line never ends.
      if (path === '/v1/audit/keys') return Response.json({ keys: [] });
      if (path === '/v1/audit/shards') return new Response(null, { status: 404 });
      if (path === '/v1/audit/checkpoints') return Response.json({ checkpoints: [] });
      if (path === '/v1/audit/export')
        return new Response(flood(floods, ANSWER_BYTES.record, '{"chain":'), { headers: { 'content-type': 'application/x-ndjson' } });
      return new Response(null, { status: 404 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });
  beforeEach(() => {
    floods.length = 0;
  });

  async function failure(call: () => Promise<unknown>): Promise<unknown> {
    return call().then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
  }

  /** Exit 1, the message naming the request and the cap; the flood read no further than its cap (and what sockets buffer), its reader gone. */
  async function expectRefused(error: unknown, message: RegExp): Promise<void> {
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(1);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain(TOKEN);
    expect((error as Error).message).not.toContain('aaaa');
    await expect.poll(() => floods.length === 1 && floods[0]!.cancelled, { timeout: 5000 }).toBe(true);
    expect(floods[0]!.sent).toBeLessThan(floods[0]!.endBytes);
  }

  it('keyway audit query and explain --url: a page past 64 MiB, a record past 1 MiB', async () => {
    const source = await openAuditSource({ url: broker.base, token: TOKEN });
    await expectRefused(
      await failure(() => source.query(new URLSearchParams())),
      new RegExp(`^the answer to GET /v1/audit/events is larger than ${ANSWER_BYTES.page} bytes: not read further$`),
    );
    floods.length = 0;
    await expectRefused(
      await failure(() => source.event('01ABC')),
      new RegExp(`^the answer to GET /v1/audit/events/01ABC is larger than ${ANSWER_BYTES.record} bytes: not read further$`),
    );
  });

  it('keyway audit verify --url: an export line past one record is not held in memory', async () => {
    const source = await openAuditSource({ url: broker.base, token: TOKEN });
    const verification = (await source.verification()) as AuditLogSource;
    const error = await failure(async () => {
      for await (const record of verification.records) expect(record).toBeUndefined();
    });
    await expectRefused(error, new RegExp(`GET /v1/audit/export has a line longer than ${ANSWER_BYTES.record} characters: not an audit record`));
  });

  it("keyway keys list and rotate --url: the list, or an error's body, past 256 KiB", async () => {
    const list = await openKeySource(['--url', broker.base, '--token', TOKEN], 'list');
    await expectRefused(
      await failure(() => list.source.list()),
      new RegExp(`^the answer to GET /v1/keys is larger than ${ANSWER_BYTES.small} bytes: not read further$`),
    );
    floods.length = 0;
    // An error's body is read for its RFC 6749 members, no further than the cap either: the error is then the status alone.
    const rotate = await openKeySource(['--url', broker.base, '--token', TOKEN], 'rotate');
    await expectRefused(await failure(() => rotate.source.rotate()), /^\/v1\/keys\/rotate answered 500 $/);
  });

  it('keyway cloud check: discovery past 256 KiB', async () => {
    await expectRefused(
      await failure(() => cloudCheck.run(['--url', broker.base])),
      new RegExp(`^the answer to GET ${broker.base.replaceAll('.', '\\.')}/\\.well-known/openid-configuration is larger than ${ANSWER_BYTES.small} bytes`),
    );
  });
});

describe('the commands that read a broker take an answer that is not JSON as exit 1', () => {
  it("keyway keys list --url: a sign-in page answered in the broker's place", async () => {
    const page = await serveOnLoopback(() => new Response('<html>sign in</html>', { headers: { 'content-type': 'text/html' } }));
    try {
      const list = await openKeySource(['--url', page.base, '--token', TOKEN], 'list');
      const error = await list.source.list().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(CliError);
      expect([(error as CliError).exitCode, (error as Error).message]).toEqual([1, 'the answer to GET /v1/keys is not JSON']);
    } finally {
      await page.close();
    }
  });
});

describe('keyway audit verify --url follows only pages that move forward', () => {
  /** A broker whose pages of checkpoints (one chain) or root checkpoints (sharded) answer `page` to every cursor, counting the requests. */
  async function lyingBroker(paged: '/v1/audit/checkpoints' | '/v1/audit/root-checkpoints', page: (after: string) => unknown) {
    let pages = 0;
    const broker = await serveOnLoopback((request) => {
      const url = new URL(request.url);
      if (url.pathname === '/v1/audit/keys') return Response.json({ keys: [] });
      if (url.pathname === '/v1/audit/shards') {
        return paged === '/v1/audit/checkpoints' ? new Response(null, { status: 404 }) : Response.json({ shards: [{ shard: 'audit-0' }] });
      }
      if (url.pathname === paged) {
        pages += 1;
        return Response.json(page(url.searchParams.get('after') ?? ''));
      }
      if (url.pathname === '/v1/audit/checkpoints') return Response.json({ checkpoints: [] });
      return new Response(null, { status: 404 });
    });
    return { broker, pages: () => pages };
  }

  it.each([
    ['a cursor after a page of no checkpoints', '/v1/audit/checkpoints', () => ({ checkpoints: [], next_cursor: '1' }), 1],
    ['a cursor it gave before', '/v1/audit/checkpoints', (after: string) => ({ checkpoints: [{}], next_cursor: after === '0' ? '5' : '0' }), 2],
    ['a root cursor after no root checkpoints', '/v1/audit/root-checkpoints', () => ({ root_checkpoints: [], next_cursor: 'x' }), 1],
    ['a root cursor it gave before', '/v1/audit/root-checkpoints', () => ({ root_checkpoints: [{ jws: 'a.b.c' }], next_cursor: 'x' }), 2],
  ] as const)('%s: exit 1 after the pages that show it', async (_, paged, page, expectedPages) => {
    const { broker, pages } = await lyingBroker(paged, page);
    try {
      const source = await openAuditSource({ url: broker.base, token: TOKEN });
      const error = await source.verification().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(CliError);
      expect((error as CliError).exitCode).toBe(1);
      expect((error as Error).message).toBe(
        `the answers to GET ${paged} do not move forward (a next_cursor after no items, or one given before): not a broker's pages`,
      );
      expect(pages()).toBe(expectedPages);
    } finally {
      await broker.close();
    }
  });
});
