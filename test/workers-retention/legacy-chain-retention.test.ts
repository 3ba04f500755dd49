import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { LEGACY_CHAIN } from '../../src/core/audit/sharded-audit-log.ts';
import { durableObjectSql } from '../../src/runtimes/workers/durable-object-sql.ts';
import { keywayState, UPKEEP_RETRY_AT } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker, scheduledAuditUpkeep } from '../../src/runtimes/workers/worker-broker.ts';
import { auditEvent } from '../support/audit-event.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import { ownStateNamespace, workerEnv } from '../workers/workers-harness.ts';

const HOUR = 3_600_000;

/** This project's bindings set KEYWAY_AUDIT_RETENTION_DAYS to 1 (vitest.config.ts): the Durable Objects read it from there. */
describe('the sealed legacy audit chain under a retention set after its last alarm (workerd)', () => {
  it('is pruned by its own alarm, which opening the shards arms again: an alarm that ran while retention was 0 set none', async () => {
    expect(workerEnv.KEYWAY_AUDIT_RETENTION_DAYS).toBe('1');
    const states = ownStateNamespace();
    const env = { ...workerEnv, STATE: states, AUDIT: ownStateNamespace(workerEnv.AUDIT), KEYWAY_AUDIT_SHARDS: '2' };
    const legacy = keywayState(states);
    // Records the single-chain KeywayState wrote, two days ago: past the one-day window.
    const written = new Date(Date.now() - 2 * 86_400_000).toISOString();
    for (let index = 0; index < 3; index += 1) await legacy.append(auditEvent({ time: written, subject: `legacy-${index}` }), LEGACY_CHAIN);
    // Its last alarm ran while retention was 0: it pruned nothing and set no next one.
    await runInDurableObject(legacy, (_instance, state) => state.storage.deleteAlarm());

    // The Worker starts with the shards (sealing this chain), and the Cron round passes the sealed chain over.
    const broker = await createWorkerBroker(env, [], { log: silentLogger });
    await scheduledAuditUpkeep(env, Date.now(), silentLogger);
    expect((await broker.audit.api.chains()).find((chain) => chain.shard === 'legacy')).toMatchObject({ head: { seq: 3 } });

    // Its round due (at most an hour on), the alarm prunes.
    vi.setSystemTime(Date.now() + HOUR);
    try {
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
      const [left] = await runInDurableObject(legacy, (_instance, state) =>
        state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM audit_events').toArray(),
      );
      expect(left?.n).toBe(0);
      // And the alarm keeps coming back while retention applies.
      expect(await runInDurableObject(legacy, (_instance, state) => state.storage.getAlarm())).not.toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps pruning under a record its upkeep will not sign, the alarm armed again with a growing wait and each failure logged', async () => {
    const states = ownStateNamespace();
    const env = { ...workerEnv, STATE: states, AUDIT: ownStateNamespace(workerEnv.AUDIT), KEYWAY_AUDIT_SHARDS: '2' };
    const legacy = keywayState(states);
    const written = new Date(Date.now() - 2 * 86_400_000).toISOString();
    for (let index = 0; index < 2; index += 1) await legacy.append(auditEvent({ time: written, subject: `legacy-${index}` }), LEGACY_CHAIN);
    // Sealed with its final checkpoint (2); then a record written into its storage behind the Worker's back, as old, with no MAC.
    await createWorkerBroker(env, [], { log: silentLogger });
    expect(await legacy.latestCheckpoint()).toMatchObject({ seq: 2 });
    expect(await runInDurableObject(legacy, (_instance, state) => appendForgedRecord(durableObjectSql(state.storage)))).toBe(3);
    const seqs = () =>
      runInDurableObject(legacy, (_instance, state) => ({
        records: state.storage.sql
          .exec<{ seq: number }>('SELECT seq FROM audit_events ORDER BY seq')
          .toArray()
          .map(({ seq }) => seq),
        checkpoints: state.storage.sql
          .exec<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY seq')
          .toArray()
          .map(({ seq }) => seq),
      }));
    const alarmIn = async () => ((await runInDurableObject(legacy, (_instance, state) => state.storage.getAlarm())) ?? Number.NaN) - Date.now();

    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    // Its round due (at most an hour on).
    vi.setSystemTime(Date.now() + HOUR);
    try {
      const failures = () =>
        logged.mock.calls
          .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
          .filter((line) => line['message'] === 'legacy audit chain upkeep failed');
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
      // What the checkpoint signs is pruned up to it; the record after it is kept, and the head is not signed over it.
      expect(await seqs()).toEqual({ records: [3], checkpoints: [2] });
      expect(failures()).toEqual([
        expect.objectContaining({
          level: 'error',
          component: 'audit',
          failures: 1,
          retry_in_ms: 60_000,
          error: 'ChainConflictError: record 3 carries no MAC, though the broker has MACed every record after 0: the broker did not append it',
        }),
      ]);
      expect(await alarmIn()).toBeGreaterThan(50_000);
      expect(await alarmIn()).toBeLessThanOrEqual(60_000);

      // The alarm set sooner for another of its duties (a revocation due, a slice of the usage roll-up) leaves the round waiting.
      await runInDurableObject(legacy, (_instance, state) => state.storage.setAlarm(Date.now()));
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
      expect(failures()).toHaveLength(1);
      expect(await alarmIn()).toBeGreaterThan(50_000);
      expect(await alarmIn()).toBeLessThanOrEqual(60_000);
      // Its wait over, it runs again.
      await runInDurableObject(legacy, (_instance, state) => state.storage.put(UPKEEP_RETRY_AT, Date.now()));
      await runInDurableObject(legacy, (_instance, state) => state.storage.setAlarm(Date.now()));

      // The next round fails as well, and waits twice as long; the alarm stays armed, the record kept.
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
      expect(await seqs()).toEqual({ records: [3], checkpoints: [2] });
      expect(failures()).toHaveLength(2);
      expect(failures()[1]).toMatchObject({ failures: 2, retry_in_ms: 120_000 });
      expect(await alarmIn()).toBeGreaterThan(110_000);
      expect(await alarmIn()).toBeLessThanOrEqual(120_000);
    } finally {
      vi.useRealTimers();
      logged.mockRestore();
    }
  });
});
