import { env } from 'cloudflare:workers';
import { replayGuardShards } from '../../src/runtimes/workers/replay-guard-state.ts';
import type { WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { replayGuardContract } from '../suites/replay-guard-contract.ts';

const namespace = (env as unknown as WorkerEnv).REPLAY;
const prefixes = new WeakMap<object, string>();

replayGuardContract(
  'Workers (SQLite-backed Durable Object shards)',
  async () => {
    const prefix = `contract-${crypto.randomUUID()}`;
    const guard = replayGuardShards(namespace, prefix);
    prefixes.set(guard, prefix);
    return guard;
  },
  // Another stub to the same objects, as another isolate would hold.
  async (guard) => replayGuardShards(namespace, prefixes.get(guard)),
);
