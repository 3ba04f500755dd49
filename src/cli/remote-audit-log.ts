import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { AuditRecord } from '../core/audit/audit-event.ts';
import type { Checkpoint } from '../core/audit/checkpoint.ts';
import { fromRecordJson, type AuditRecordJson } from '../core/audit/record-json.ts';
import type { RootCheckpoint } from '../core/audit/root-checkpoint.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import type { AuditChainInfo } from '../core/audit/audit-shards.ts';
import { withPinned } from '../storage/sqlite-audit-log-source.ts';
import { ANSWER_BYTES, answerJson, brokerError } from './bounded-answer.ts';
import { CliError } from './command.ts';

/** A GET to the broker: `authorized` sends the audit:read token. Answers whatever the broker answered. */
export type BrokerGet = (path: string, params?: URLSearchParams, authorized?: boolean) => Promise<Response>;

/** The answer if it is a success; a CliError naming the path, the status and the broker's error (made inert: the broker chose it) otherwise. */
export async function successful(path: string, response: Response): Promise<Response> {
  if (response.ok) return response;
  throw await brokerError('GET', path, response);
}

/**
 * Everything `audit verify --url` reads from a broker: the one chain with its checkpoints, or on a
 * sharded log (a broker that lists GET /v1/audit/shards) every chain with its own checkpoints and
 * the root checkpoints. The keys it trusts: those the broker's /v1/audit/keys publishes, and `pinned`.
 */
export async function remoteAuditLog(get: BrokerGet, pinned?: JSONWebKeySet): Promise<AuditLogSource | ShardedLogSource> {
  const json = async <T>(path: string, params?: URLSearchParams, authorized = true, maxBytes: number = ANSWER_BYTES.page): Promise<T> =>
    answerJson<T>(await successful(path, await get(path, params, authorized)), maxBytes, `GET ${path}`);
  // Not the JWKS: it drops a key once its tokens have expired, but the checkpoints it signed stay.
  const jwks = await json<JSONWebKeySet>('/v1/audit/keys', undefined, false, ANSWER_BYTES.small);
  const keys = createLocalJWKSet(withPinned(pinned, jwks.keys));
  const chain = async (shard?: string): Promise<AuditLogSource> => {
    const named: [string, string][] = shard === undefined ? [] : [['shard', shard]];
    const checkpoints = await everyPage('/v1/audit/checkpoints', '0', async (after) => {
      const page = await json<{ checkpoints: Checkpoint[]; next_cursor?: string }>(
        '/v1/audit/checkpoints',
        new URLSearchParams([...named, ['after', after]]),
        false,
      );
      return { items: page.checkpoints, next: page.next_cursor };
    });
    return { records: exportedRecords(get, new URLSearchParams([...named, ['format', 'ndjson']])), checkpoints, keys };
  };
  const listed = await get('/v1/audit/shards');
  if (listed.status === 404) {
    // A broker with one chain (Node); the answer is read to its end, so that its connection is free again.
    await listed.body?.cancel();
    return chain();
  }
  const { shards } = await answerJson<{ shards: AuditChainInfo[] }>(await successful('/v1/audit/shards', listed), ANSWER_BYTES.small, 'GET /v1/audit/shards');
  const roots = await everyPage('/v1/audit/root-checkpoints', '', async (after) => {
    const page = await json<{ root_checkpoints: RootCheckpoint[]; next_cursor?: string }>('/v1/audit/root-checkpoints', new URLSearchParams({ after }), false);
    return { items: page.root_checkpoints.map((root) => root.jws), next: page.next_cursor };
  });
  return { chains: await Promise.all(shards.map(async ({ shard }) => ({ name: shard, source: await chain(shard) }))), roots, keys };
}

/**
 * Every item of a paged list, following `next_cursor` from `first`. The broker chooses the cursors: one that names no
 * item, or a cursor it gave before, would have verify ask for pages for ever, holding what they carried, so it is exit 1.
 */
async function everyPage<T>(path: string, first: string, page: (after: string) => Promise<{ items: readonly T[]; next: string | undefined }>): Promise<T[]> {
  const items: T[] = [];
  const followed = new Set([first]);
  for (let after = first; ; ) {
    const { items: these, next } = await page(after);
    items.push(...these);
    if (next === undefined) return items;
    if (these.length === 0 || followed.has(next)) {
      throw new CliError(`the answers to GET ${path} do not move forward (a next_cursor after no items, or one given before): not a broker's pages`, 1);
    }
    followed.add(next);
    after = next;
  }
}

/** A chain's records as GET /v1/audit/export streams them, read when verify asks for them. */
async function* exportedRecords(get: BrokerGet, params: URLSearchParams): AsyncGenerator<AuditRecord> {
  const exported = await successful('/v1/audit/export', await get('/v1/audit/export', params));
  let rest = '';
  const lines = function* (text: string) {
    const parts = (rest + text).split('\n');
    rest = parts.pop() ?? '';
    // A line is one record: one that never ends is not the broker's export, and is not held in memory while it streams.
    if (rest.length > ANSWER_BYTES.record) {
      throw new CliError(`the answer to GET /v1/audit/export has a line longer than ${ANSWER_BYTES.record} characters: not an audit record`, 1);
    }
    yield* parts.filter((line) => line !== '');
  };
  const record = (line: string): AuditRecord => {
    const parsed = fromRecordJson(JSON.parse(line) as AuditRecordJson);
    // Queries, stats and alerts read the index: without it, verify would vouch for what it never saw.
    if (parsed.index === undefined) {
      throw new CliError(`the broker exported record ${parsed.chain.seq} without its index columns: it is older than this keyway; upgrade it`, 1);
    }
    return parsed;
  };
  for await (const chunk of (exported.body ?? new ReadableStream<Uint8Array>()).pipeThrough(new TextDecoderStream())) yield* [...lines(chunk)].map(record);
  if (rest !== '') yield record(rest);
}
