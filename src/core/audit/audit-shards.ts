import { sha256Hex } from '../mint/sha256-hex.ts';
import type { AuditEvent } from './audit-event.ts';
import type { ChainHead } from './checkpoint.ts';
import type { RootCheckpoint } from './root-checkpoint.ts';

/** The most audit shards a deployment may have: a cursor carries one position per shard. */
export const MAX_AUDIT_SHARDS = 256;

/**
 * The shard that holds `event`: a hash of the identity the log files it under (the verified issuer
 * and subject, or those a token claimed), so one identity's history is one chain; events without
 * one spread by their subject token's hash, else (no token, or one kept by its length alone) by
 * their own id. Jump consistent hashing (Lamping and Veach, 2014): growing from n to m shards
 * moves only (m − n) / m of the identities.
 */
export function auditShardOf(event: AuditEvent, shards: number): number {
  const issuer = event.issuer ?? event.subject_token?.claimed_iss;
  const subject = event.subject ?? event.subject_token?.claimed_sub;
  return shardOfKey(subject === undefined ? (event.subject_token?.sha256 ?? event.id) : `${issuer ?? ''}\n${subject}`, shards);
}

/** The shard of any key (an identity, a client address, a policy id): the same key always lands on the same one of `shards`. */
export function shardOfKey(key: string, shards: number): number {
  return jumpHash(BigInt(`0x${sha256Hex(key).slice(0, 16)}`), shards);
}

/** One chain of a sharded log as GET /v1/audit/shards lists it: its head, and for a shard what it measured of its appends. */
export interface AuditChainInfo {
  readonly shard: string;
  readonly head: ChainHead;
  /** Appends this shard's instance made since it started, and the milliseconds each took inside it on average. */
  readonly appends?: number;
  readonly append_ms?: number;
}

export interface AuditShardsApi {
  chains(): Promise<readonly AuditChainInfo[]>;
  /** Root checkpoints after the one at position `after` (rootCheckpointPosition; empty: from the first), oldest first. */
  roots(after: string, limit: number): Promise<readonly RootCheckpoint[]>;
  latestRoot(): Promise<RootCheckpoint | undefined>;
}

const MASK_64 = (1n << 64n) - 1n;

function jumpHash(key: bigint, buckets: number): number {
  let bucket = -1;
  let next = 0;
  let state = key;
  while (next < buckets) {
    bucket = next;
    state = (state * 2862933555777941757n + 1n) & MASK_64;
    next = Math.floor((bucket + 1) * (2 ** 31 / (Number(state >> 33n) + 1)));
  }
  return bucket;
}
