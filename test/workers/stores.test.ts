import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { keywayState, stateStores } from '../../src/runtimes/workers/keyway-state.ts';
import type { WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { storeContract } from '../suites/store-contract.ts';

const namespace = (env as unknown as WorkerEnv).STATE;

storeContract('Workers (SQLite-backed Durable Object)', async () => {
  const name = `contract-${crypto.randomUUID()}`;
  return {
    ...stateStores(() => keywayState(namespace, name)),
    tamper: (sql, params) => runInDurableObject(keywayState(namespace, name), (_instance, state) => void state.storage.sql.exec(sql, ...params)),
  };
});
