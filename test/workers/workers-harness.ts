import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { silentLogger } from '../../src/log.ts';
import { keywayState } from '../../src/workers/keyway-state.ts';
import { REPLAY_SHARDS, replayShard } from '../../src/workers/replay-guard-state.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/workers/worker-broker.ts';
import type { StartBroker } from '../suites/exchange-suite.ts';

export const workerEnv = env as unknown as WorkerEnv;

/** The Worker broker inside workerd, with the real KeywayState Durable Object binding. */
export const startWorkersHarness: StartBroker = async (policies, options = {}) => {
  const files = Object.entries(policies).map(([path, text]) => ({ path, text }));
  const brokerEnv = { ...workerEnv, ...options.settings };
  const broker = await createWorkerBroker(brokerEnv, files, {
    log: options.log ?? silentLogger,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  return {
    issuer: workerEnv.KEYWAY_ISSUER,
    request: async (path, init) => broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), brokerEnv, createExecutionContext()),
    auditEvent: (id) => keywayState(workerEnv.STATE).get(id),
    auditUpkeep: async () => {
      await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    },
    setReplayGuardDown: async (down) => {
      const statement = down ? 'ALTER TABLE replay_claims RENAME TO replay_claims_away' : 'ALTER TABLE replay_claims_away RENAME TO replay_claims';
      for (let shard = 0; shard < REPLAY_SHARDS; shard += 1) {
        // A key's first hex digit picks its shard.
        await runInDurableObject(replayShard(workerEnv.REPLAY, shard.toString(16)), (_instance, state) => void state.storage.sql.exec(statement));
      }
    },
    revokeDueGitHubTokens: async () => {
      await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    },
    tamper: (sql, params) => runInDurableObject(keywayState(workerEnv.STATE), (_instance, state) => void state.storage.sql.exec(sql, ...params)),
    close: async () => {},
  };
};
