import { createExecutionContext } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { ownStateNamespace, watchedNamespace, workerEnv } from './workers-harness.ts';

// This file's own module instance of the Worker entry: no other test started its broker.
describe('a Worker whose broker fails to start', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tries the start again only once its growing backoff has passed, answering 503 with Retry-After meanwhile, and recovers once fixed', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      // A deployment whose audit log has 4 shards, redeployed with 2: its broker does not start (docs/operations/workers.md).
      const own = { STATE: ownStateNamespace(), AUDIT: ownStateNamespace(workerEnv.AUDIT) };
      await createWorkerBroker({ ...workerEnv, ...own, KEYWAY_AUDIT_SHARDS: '4' }, [], { log: silentLogger });
      const state = watchedNamespace(own.STATE);
      const broken: WorkerEnv = { ...workerEnv, ...own, STATE: state.namespace, KEYWAY_AUDIT_SHARDS: '2' };
      const serve = (env: WorkerEnv) =>
        worker.fetch(new Request('https://keyway.test/.well-known/jwks.json') as Parameters<typeof worker.fetch>[0], env, createExecutionContext());
      const failedStarts = () =>
        logged.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>).filter((line) => line['message'] === 'broker failed to start');
      const refusedAt = async (at: number, env = broken) => {
        vi.setSystemTime(at);
        const response = await serve(env);
        expect([response.status, response.headers.get('cache-control')]).toEqual([503, 'no-store']);
        expect(await response.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the broker is not configured correctly' });
        return response.headers.get('retry-after');
      };

      const start = Date.parse('2030-01-01T00:00:00Z');
      expect(await refusedAt(start)).toBe('1');
      expect(failedStarts()).toEqual([expect.objectContaining({ failures: 1, retry_in_ms: 1000, error: expect.stringContaining('KEYWAY_AUDIT_SHARDS is 2') })]);
      const stateCalls = state.calls.length;
      expect(stateCalls).toBeGreaterThan(0);

      // Within the backoff: no start, no read of KeywayState, whatever the traffic.
      for (let request = 0; request < 20; request += 1) expect(await refusedAt(start + 400)).toBe('1');
      expect([failedStarts().length, state.calls.length]).toEqual([1, stateCalls]);

      // Past it: one start, which fails again and doubles the wait.
      expect(await refusedAt(start + 1000)).toBe('2');
      expect(failedStarts()).toHaveLength(2);
      expect(failedStarts()[1]).toMatchObject({ failures: 2, retry_in_ms: 2000 });
      expect(await refusedAt(start + 2500)).toBe('1');
      // The fixed configuration is not read before the backoff has passed either.
      expect(await refusedAt(start + 2900, { ...broken, KEYWAY_AUDIT_SHARDS: '4' })).toBe('1');
      expect(failedStarts()).toHaveLength(2);

      // Fixed (the count set back), the next start after the backoff serves.
      vi.setSystemTime(start + 3000);
      const served = await serve({ ...broken, KEYWAY_AUDIT_SHARDS: '4' });
      expect(served.status).toBe(200);
      expect(((await served.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
      expect(failedStarts()).toHaveLength(2);
    } finally {
      logged.mockRestore();
    }
  });
});
