import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { vi } from 'vitest';
import type { RateLimit } from '../../src/core/limits/token-bucket.ts';
import type { RateLimitState } from '../../src/runtimes/workers/rate-limit-state.ts';
import { silentLogger } from '../../src/core/log.ts';
import { keywayState, type KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { REPLAY_SHARDS, replayShard, ENDED_CI_WORK_PREFIX, REVOCATION_PREFIX } from '../../src/runtimes/workers/replay-guard-state.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { shardedAuditUpkeep } from '../../src/runtimes/workers/worker-audit-log.ts';
import { auditShard, readAuditShards, type AuditShardState } from '../../src/runtimes/workers/audit-shard-state.ts';
import { chainStore } from '../../src/runtimes/workers/audit-chain-object.ts';
import type { AuditStore } from '../../src/core/audit/audit-event.ts';
import type { StartBroker } from '../suites/exchange-suite.ts';

export const workerEnv = env as unknown as WorkerEnv;

/**
 * The real KeywayState namespace, with a suffix of its own on every name: a broker given it keeps its
 * audit log, keys, live policy set and deliveries in a state Durable Object no other broker of the
 * test file reaches, as a Node broker in a fresh data directory does.
 */
export function ownStateNamespace<T extends Rpc.DurableObjectBranded | undefined = KeywayState>(
  shared: DurableObjectNamespace<T> = workerEnv.STATE as unknown as DurableObjectNamespace<T>,
): DurableObjectNamespace<T> {
  const suffix = crypto.randomUUID();
  const idFromName = (name: string) => shared.idFromName(`${name}/${suffix}`);
  return {
    newUniqueId: (options) => shared.newUniqueId(options),
    idFromName,
    idFromString: (id) => shared.idFromString(id),
    get: (id, options) => shared.get(id, options),
    getByName: (name, options) => shared.get(idFromName(name), options),
    jurisdiction: (jurisdiction) => ownStateNamespace(shared.jurisdiction(jurisdiction)),
  };
}

/**
 * The RateLimitState namespace with its objects' clock at `now` during each call. They refill by their own clock, which in
 * workerd is this isolate's Date, so it is set for the call and given back once no call is under way: a test that moves
 * its clock moves theirs, and nothing else runs on a clock that stands still.
 */
export function limitsOnClock(shared: DurableObjectNamespace<RateLimitState>, now: () => number): DurableObjectNamespace<RateLimitState> {
  let calls = 0;
  const onClock = async <T>(call: () => Promise<T>): Promise<T> => {
    calls += 1;
    vi.setSystemTime(now());
    try {
      return await call();
    } finally {
      calls -= 1;
      if (calls === 0) vi.useRealTimers();
    }
  };
  const stub = (held: DurableObjectStub<RateLimitState>) =>
    ({
      take: (limit: RateLimit, key: string) => onClock(async () => held.take(limit, key)),
      giveBack: (limit: RateLimit, key: string) => onClock(async () => held.giveBack(limit, key)),
    }) as unknown as DurableObjectStub<RateLimitState>;
  return {
    newUniqueId: (options) => shared.newUniqueId(options),
    idFromName: (name) => shared.idFromName(name),
    idFromString: (id) => shared.idFromString(id),
    get: (id, options) => stub(shared.get(id, options)),
    getByName: (name, options) => stub(shared.getByName(name, options)),
    jurisdiction: (jurisdiction) => limitsOnClock(shared.jurisdiction(jurisdiction), now),
  };
}

/** Takes the replay guard's store away (its table renamed) in every shard of each of `prefixes`, or brings it back. */
async function replayClaimsDown(down: boolean, prefixes: readonly string[]): Promise<void> {
  const statement = down ? 'ALTER TABLE replay_claims RENAME TO replay_claims_away' : 'ALTER TABLE replay_claims_away RENAME TO replay_claims';
  for (const prefix of prefixes) {
    for (let shard = 0; shard < REPLAY_SHARDS; shard += 1) {
      // A key's first hex digit picks its shard.
      await runInDurableObject(replayShard(workerEnv.REPLAY, shard.toString(16), prefix), (_instance, state) => void state.storage.sql.exec(statement));
    }
  }
}

/** The Worker broker inside workerd, with the real Durable Object bindings (state, audit shards and rate limits of its own with `ownState`). */
export const startWorkersHarness: StartBroker = async (policies, options = {}) => {
  const files = Object.entries(policies).map(([path, text]) => ({ path, text }));
  const states = options.ownState === true ? ownStateNamespace() : workerEnv.STATE;
  const shards = options.ownState === true ? ownStateNamespace(workerEnv.AUDIT) : workerEnv.AUDIT;
  // Rate-limit buckets of its own too, as a Node broker's are its process's: a test that spends a global budget spends no other's.
  const ownLimits = options.ownState === true ? ownStateNamespace(workerEnv.LIMITS) : workerEnv.LIMITS;
  // The buckets go by their objects' clock: on the test's, when it has one.
  const limits = options.now === undefined ? ownLimits : limitsOnClock(ownLimits, options.now);
  const brokerEnv = { ...workerEnv, ...options.settings, STATE: states, AUDIT: shards, LIMITS: limits };
  const broker = await createWorkerBroker(brokerEnv, files, {
    log: options.log ?? silentLogger,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  return {
    issuer: workerEnv.KEYWAY_ISSUER,
    request: async (path, init) => broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), brokerEnv, createExecutionContext()),
    auditEvent: (id) => broker.audit.log.get(id),
    recentAuditEvents: async () => (await broker.audit.log.query({ limit: 50, order: 'desc', by: 'id' })).records.map((record) => record.event),
    auditUpkeep: async () => {
      await runDurableObjectAlarm(keywayState(states));
      await shardedAuditUpkeep(broker.audit, { env: brokerEnv, keys: broker.keys.ring, now: options.now?.() ?? Date.now(), log: silentLogger });
    },
    // Single-use claims' shards, and those of completed CI work, which share their store.
    setReplayGuardDown: (down) => replayClaimsDown(down, ['replay', ENDED_CI_WORK_PREFIX]),
    setRevocationListDown: (down) => replayClaimsDown(down, [REVOCATION_PREFIX]),
    revokeDueGitHubTokens: async () => {
      await runDurableObjectAlarm(keywayState(states));
    },
    tamper: async (sql, params) => {
      const edit = (_instance: unknown, state: DurableObjectState) => void state.storage.sql.exec(sql, ...params);
      await runInDurableObject(keywayState(states), edit);
      // An edit of the audit log reaches every shard: it changes the record it names in whichever holds it.
      if (sql.includes('audit_events')) {
        for (const { name } of broker.audit.log.chains) if (name !== 'legacy') await runInDurableObject(auditShard(shards, Number(name)), edit);
      }
    },
    close: async () => {},
  };
};

/**
 * `namespace` as it is, watched: the object names asked for (`idFromName`) and the RPC methods
 * called on its stubs, in order. Proves what a request waits on without changing what it does.
 */
export function watchedNamespace<N extends object>(namespace: N): { namespace: N; names: string[]; calls: string[] } {
  const names: string[] = [];
  const calls: string[] = [];
  const watched = new Proxy(namespace, {
    get: (target, property) => {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property === 'idFromName') {
        return (name: string) => {
          names.push(name);
          return value.call(target, name);
        };
      }
      if (property !== 'get') return value.bind(target);
      return (...args: unknown[]) =>
        new Proxy(value.apply(target, args) as object, {
          get: (stub, method) => {
            if (typeof method === 'string' && method !== 'then') calls.push(method);
            return Reflect.get(stub, method, stub);
          },
        });
    },
  });
  return { namespace: watched, names, calls };
}

/** The audit shard objects of the shared namespace, as the Worker's own broker uses them (KEYWAY_AUDIT_SHARDS from wrangler.toml). */
export function sharedAuditShardObjects(): DurableObjectStub<AuditShardState>[] {
  return Array.from({ length: readAuditShards(workerEnv) }, (_, shard) => auditShard(workerEnv.AUDIT, shard));
}

/** The same, as the AuditStore each one is. */
export function sharedAuditShards(): AuditStore[] {
  return sharedAuditShardObjects().map((shard, index) => chainStore(() => shard, String(index)));
}

/** What a Cron round of the sharded audit log rejects with once upkeep failed for `failed` of its `chains` chains. */
export const failedAuditRound = (failed: number, chains: number) => ({
  name: 'AuditShardUpkeepError',
  code: 'audit_shard_upkeep_failed',
  message: `upkeep failed for ${failed} of ${chains} audit chains; no root checkpoint this round`,
});
