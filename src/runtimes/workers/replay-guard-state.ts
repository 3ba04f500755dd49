import { DurableObject } from 'cloudflare:workers';
import type { ReplayClaim, ReplayClaimResult, ReplayGuard } from '../../core/replay/replay-guard.ts';
import { endedCiWork, type EndedCiWork } from '../../core/replay/ended-ci-work.ts';
import { revocationList, type RevocationList } from '../../core/revocation/revocation-list.ts';
import { perGroup } from '../../core/per-group.ts';
import { migrate } from '../../storage/migrate.ts';
import { SqliteReplayGuard } from '../../storage/sqlite-replay-guard.ts';
import { durableObjectSql } from './durable-object-sql.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * Single-use claims on Workers: SQLite-backed Durable Objects running the same store as the
 * Node SQLite file. A Durable Object is one instance worldwide and runs one call at a time,
 * so a claim is atomic across isolates and locations. Claims are independent per token, so
 * they are spread over REPLAY_SHARDS objects by key instead of queueing behind the audit log
 * in KeywayState; a key always lands on the same shard. The shards carry the same schema
 * as every keyway database, of which they use `replay_claims`.
 */
export class ReplayGuardState extends DurableObject<WorkerEnv> implements ReplayGuard {
  readonly #guard: SqliteReplayGuard;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const db = durableObjectSql(ctx.storage);
    migrate(db);
    this.#guard = new SqliteReplayGuard(db);
  }

  claim(claim: ReplayClaim): Promise<ReplayClaimResult> {
    return this.#guard.claim(claim);
  }

  claimAll(claims: readonly ReplayClaim[]): Promise<ReplayClaimResult[]> {
    return this.#guard.claimAll(claims);
  }

  holds(key: string, now: number): Promise<boolean> {
    return this.#guard.holds(key, now);
  }

  holdsAll(keys: readonly string[], now: number): Promise<boolean[]> {
    return this.#guard.holdsAll(keys, now);
  }
}

export const REPLAY_SHARDS = 16;

/** Keys are lower-case hex, so their first digit picks one of REPLAY_SHARDS. */
function shardIndexOf(key: string): number {
  const shard = Number.parseInt(key.slice(0, 1), 16);
  if (!(shard >= 0 && shard < REPLAY_SHARDS)) throw new Error('a replay key must be lower-case hex');
  return shard;
}

function shardStub(namespace: DurableObjectNamespace<ReplayGuardState>, shard: number, prefix: string): DurableObjectStub<ReplayGuardState> {
  return namespace.get(namespace.idFromName(`${prefix}-${shard}`));
}

/** The shard that holds a key's claims. */
export function replayShard(namespace: DurableObjectNamespace<ReplayGuardState>, key: string, prefix = 'replay'): DurableObjectStub<ReplayGuardState> {
  return shardStub(namespace, shardIndexOf(key), prefix);
}

/**
 * The Worker-side ReplayGuard: RPC to the key's shard; claims made together, one call to each shard they land on. A stub
 * belongs to the request that made it, so each call makes its own.
 */
export function replayGuardShards(namespace: DurableObjectNamespace<ReplayGuardState>, prefix = 'replay'): ReplayGuard {
  return {
    claim: (claim) => replayShard(namespace, claim.key, prefix).claim(claim),
    claimAll: (claims) =>
      perGroup(
        claims,
        (claim) => shardIndexOf(claim.key),
        (shard, ofShard) => shardStub(namespace, shard, prefix).claimAll(ofShard),
      ),
  };
}

/** Revoked keyway tokens on Workers: the same shards' store under their own names, so revocations never queue behind claims. */
export function revocationShards(namespace: DurableObjectNamespace<ReplayGuardState>): RevocationList {
  return revocationList(replayGuardShards(namespace, REVOCATION_PREFIX), (keys, now) =>
    perGroup(keys, shardIndexOf, (shard, ofShard) => shardStub(namespace, shard, REVOCATION_PREFIX).holdsAll(ofShard, now)),
  );
}

export const REVOCATION_PREFIX = 'revoked';

/** Completed CI work on Workers: the same shards' store under names of its own; a run's keys share one shard. */
export function endedCiWorkShards(namespace: DurableObjectNamespace<ReplayGuardState>): EndedCiWork {
  return endedCiWork(replayGuardShards(namespace, ENDED_CI_WORK_PREFIX), (key, now) => replayShard(namespace, key, ENDED_CI_WORK_PREFIX).holds(key, now));
}

export const ENDED_CI_WORK_PREFIX = 'ended-ci-work';
