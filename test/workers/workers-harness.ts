import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { silentLogger } from '../../src/core/log.ts';
import { keywayState, type KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { REPLAY_SHARDS, replayShard } from '../../src/runtimes/workers/replay-guard-state.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import type { StartBroker } from '../suites/exchange-suite.ts';

export const workerEnv = env as unknown as WorkerEnv;

/**
 * The real KeywayState namespace, with a suffix of its own on every name: a broker given it keeps its
 * audit log, keys, live policy set and deliveries in a state Durable Object no other broker of the
 * test file reaches, as a Node broker in a fresh data directory does.
 */
export function ownStateNamespace(shared: DurableObjectNamespace<KeywayState> = workerEnv.STATE): DurableObjectNamespace<KeywayState> {
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

/** The Worker broker inside workerd, with the real KeywayState Durable Object binding (one of its own with `ownState`). */
export const startWorkersHarness: StartBroker = async (policies, options = {}) => {
  const files = Object.entries(policies).map(([path, text]) => ({ path, text }));
  const states = options.ownState === true ? ownStateNamespace() : workerEnv.STATE;
  const brokerEnv = { ...workerEnv, ...options.settings, STATE: states };
  const broker = await createWorkerBroker(brokerEnv, files, {
    log: options.log ?? silentLogger,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  return {
    issuer: workerEnv.KEYWAY_ISSUER,
    request: async (path, init) => broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), brokerEnv, createExecutionContext()),
    auditEvent: (id) => keywayState(states).get(id),
    auditUpkeep: async () => {
      await runDurableObjectAlarm(keywayState(states));
    },
    setReplayGuardDown: async (down) => {
      const statement = down ? 'ALTER TABLE replay_claims RENAME TO replay_claims_away' : 'ALTER TABLE replay_claims_away RENAME TO replay_claims';
      for (let shard = 0; shard < REPLAY_SHARDS; shard += 1) {
        // A key's first hex digit picks its shard.
        await runInDurableObject(replayShard(workerEnv.REPLAY, shard.toString(16)), (_instance, state) => void state.storage.sql.exec(statement));
      }
    },
    revokeDueGitHubTokens: async () => {
      await runDurableObjectAlarm(keywayState(states));
    },
    tamper: (sql, params) => runInDurableObject(keywayState(states), (_instance, state) => void state.storage.sql.exec(sql, ...params)),
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
