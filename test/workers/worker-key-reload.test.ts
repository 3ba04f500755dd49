import { createExecutionContext, runInDurableObject } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KEY_RING_REFRESH_SECONDS } from '../../src/core/mint/key-life-cycle.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import type { WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { ownStateNamespace, watchedNamespace, workerEnv } from './workers-harness.ts';

// This file's own module instance of the Worker entry: its broker is the one this test starts.
describe('a Worker whose signing keys cannot be reloaded', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks KeywayState again only once its growing backoff has passed, answering 503 with Retry-After meanwhile, and serves once they load', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const own = ownStateNamespace();
      const state = watchedNamespace(own);
      const env: WorkerEnv = { ...workerEnv, STATE: state.namespace, AUDIT: ownStateNamespace(workerEnv.AUDIT) };
      const serve = () =>
        worker.fetch(new Request('https://keyway.test/.well-known/jwks.json') as Parameters<typeof worker.fetch>[0], env, createExecutionContext());
      const failedLoads = () =>
        logged.mock.calls
          .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
          .filter((line) => line['message'] === 'signing keys failed to load');
      const refusedAt = async (at: number) => {
        vi.setSystemTime(at);
        const response = await serve();
        expect([response.status, response.headers.get('cache-control')]).toEqual([503, 'no-store']);
        expect(await response.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the signing keys are unavailable' });
        return response.headers.get('retry-after');
      };
      // The keys unreadable in KeywayState (its table renamed away), or readable again.
      const keysReadable = (readable: boolean) =>
        runInDurableObject(keywayState(own), (_instance, durable) => {
          durable.storage.sql.exec(readable ? 'ALTER TABLE signing_keys_away RENAME TO signing_keys' : 'ALTER TABLE signing_keys RENAME TO signing_keys_away');
        });

      const start = Date.parse('2030-01-01T00:00:00Z');
      vi.setSystemTime(start);
      const served = await serve();
      expect(served.status).toBe(200);
      const published = ((await served.json()) as { keys: unknown[] }).keys;
      await keysReadable(false);

      // Within its refresh period the ring is served as loaded, KeywayState not asked.
      const calls = state.calls.length;
      vi.setSystemTime(start + KEY_RING_REFRESH_SECONDS * 1000 - 1);
      expect(((await (await serve()).json()) as { keys: unknown[] }).keys).toEqual(published);
      expect(state.calls.length).toBe(calls);

      // Stale: one reload, which fails.
      const stale = start + KEY_RING_REFRESH_SECONDS * 1000;
      expect(await refusedAt(stale)).toBe('1');
      expect(failedLoads()).toEqual([expect.objectContaining({ failures: 1, retry_in_ms: 1000, error: expect.stringContaining('signing_keys') })]);
      const loads = state.calls.length;
      expect(loads).toBeGreaterThan(calls);

      // Within the backoff: no reload, whatever the traffic; /healthz, which reads no key, answers that the isolate is degraded.
      for (let request = 0; request < 20; request += 1) expect(await refusedAt(stale + 400)).toBe('1');
      const health = await worker.fetch(new Request('https://keyway.test/healthz') as Parameters<typeof worker.fetch>[0], env, createExecutionContext());
      expect([health.status, await health.json()]).toEqual([200, { status: 'degraded' }]);
      expect([failedLoads().length, state.calls.length]).toEqual([1, loads]);

      // Past it: the requests that arrive together try once each, and their failure counts once, doubling the wait.
      vi.setSystemTime(stale + 1000);
      const together = await Promise.all([serve(), serve(), serve()]);
      expect(together.map((response) => [response.status, response.headers.get('retry-after')])).toEqual([
        [503, '2'],
        [503, '2'],
        [503, '2'],
      ]);
      expect(failedLoads()).toHaveLength(2);
      expect(failedLoads()[1]).toMatchObject({ failures: 2, retry_in_ms: 2000 });

      // Readable again: not asked before the backoff has passed; then the ring loads and is served.
      await keysReadable(true);
      const readableAgain = state.calls.length;
      expect(await refusedAt(stale + 2900)).toBe('1');
      expect(state.calls.length).toBe(readableAgain);
      vi.setSystemTime(stale + 3000);
      const recovered = await serve();
      expect(recovered.status).toBe(200);
      expect(((await recovered.json()) as { keys: unknown[] }).keys).toEqual(published);
      expect(failedLoads()).toHaveLength(2);

      // The count set back: the next failure waits the first wait again.
      await keysReadable(false);
      expect(await refusedAt(stale + 3000 + KEY_RING_REFRESH_SECONDS * 1000)).toBe('1');
      expect(failedLoads()[2]).toMatchObject({ failures: 1, retry_in_ms: 1000 });
    } finally {
      logged.mockRestore();
    }
  });
});
