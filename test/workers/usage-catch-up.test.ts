import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it, vi } from 'vitest';
import { UsageCatchingUpError } from '../../src/core/audit/inventory.ts';
import { LEGACY_CHAIN, ShardedAuditLog } from '../../src/core/audit/sharded-audit-log.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { chainStore } from '../../src/runtimes/workers/audit-chain-object.ts';
import { auditShard } from '../../src/runtimes/workers/audit-shard-state.ts';
import { durableObjectSql } from '../../src/runtimes/workers/durable-object-sql.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { AUDIT_USAGE_REBUILD, READ_BACKLOG_MAX, ROLLUP_BATCH, usageBacklog } from '../../src/storage/sqlite-audit-usage.ts';
import { seedUsageRecords, usageCatchUpSuite } from '../suites/usage-catch-up-suite.ts';
import { auditEvent } from '../support/audit-event.ts';
import { ownStateNamespace, workerEnv } from './workers-harness.ts';

usageCatchUpSuite('Workers (SQLite-backed Durable Object)', async () => {
  const shard = auditShard(ownStateNamespace(workerEnv.AUDIT), 0);
  return { run: (work) => runInDurableObject(shard, (_instance, state) => work(durableObjectSql(state.storage))) };
});

describe('a shard whose usage roll-up a migration emptied', () => {
  it('catches up on its alarm, a slice at a time, with no read; a read meanwhile is refused through the sharded log, with how far', async () => {
    const shards = ownStateNamespace(workerEnv.AUDIT);
    const shard = auditShard(shards, 0);
    const records = 5 * ROLLUP_BATCH + 500;
    const backlog = () => runInDurableObject(shard, (_instance, state) => usageBacklog(durableObjectSql(state.storage)));
    await runInDurableObject(shard, (_instance, state) => {
      const db = durableObjectSql(state.storage);
      seedUsageRecords(db, records);
      db.exec(AUDIT_USAGE_REBUILD);
    });

    // One slice is one batch at least; while records are left the alarm is set again, soon.
    expect(await runInDurableObject(shard, (instance) => instance.rollUpUsage(0))).toEqual({ behind: records - ROLLUP_BATCH, records });
    const alarm = await runInDurableObject(shard, (_instance, state) => state.storage.getAlarm());
    expect(alarm).toBeTypeOf('number');
    expect(alarm as number).toBeLessThanOrEqual(Date.now() + 1000);

    const log = new ShardedAuditLog([chainStore(() => auditShard(shards, 0), '0'), chainStore(() => auditShard(shards, 1), '1')]);
    const window = { since: 0, until: Date.UTC(2027, 0, 1) };
    const refused = await log.usage(window).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(UsageCatchingUpError);
    const { progress } = refused as UsageCatchingUpError;
    expect(progress.records).toBe(records);
    expect(progress.behind).toBeGreaterThan(READ_BACKLOG_MAX);

    // The alarm, and nothing else, brings the watermark to the log's end.
    for (let tries = 0; tries < 50 && (await backlog()).behind > 0; tries++) {
      if (!(await runDurableObjectAlarm(shard))) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await backlog()).toEqual({ behind: 0, records });
    expect(await runInDurableObject(shard, (_instance, state) => state.storage.getAlarm())).toBeNull();
    const rows = await log.usage(window);
    expect(rows.reduce((sum, row) => sum + row.count, 0)).toBe(records);
  });
});

describe('a shard appended to faster than a round of upkeep rolls up', () => {
  it('sets its roll-up alarm at once when a batch of records waits, not a round after the first; caught up and idle, it sets none', async () => {
    const shard = auditShard(ownStateNamespace(workerEnv.AUDIT), 0);
    const alarmIn = async () => ((await runInDurableObject(shard, (_instance, state) => state.storage.getAlarm())) ?? Number.NaN) - Date.now();
    const append = async (count: number) => {
      for (let done = 0; done < count; done += 500)
        await shard.appendAll(
          Array.from({ length: Math.min(500, count - done) }, () => auditEvent()),
          '0',
        );
    };

    // Under a batch appended, the roll-up waits a round of upkeep (KEYWAY_AUDIT_CHECKPOINT_SECONDS, 60 here).
    await append(ROLLUP_BATCH - 1);
    expect(await alarmIn()).toBeGreaterThan(50_000);
    // A batch waiting: at some 333 appends a second a round's worth would be more than a read may sum (READ_BACKLOG_MAX),
    // and every read refused until the alarm came.
    await append(1);
    expect(await alarmIn()).toBeLessThanOrEqual(1000);

    const backlog = () => runInDurableObject(shard, (_instance, state) => usageBacklog(durableObjectSql(state.storage)));
    for (let tries = 0; tries < 50 && (await backlog()).behind > 0; tries++) {
      if (!(await runDurableObjectAlarm(shard))) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await backlog()).toEqual({ behind: 0, records: ROLLUP_BATCH });
    // Caught up, with nothing appended, the shard is not woken again.
    expect(await runInDurableObject(shard, (_instance, state) => state.storage.getAlarm())).toBeNull();
    // The next append waits a round again: the count starts over after each roll-up.
    await append(1);
    expect(await alarmIn()).toBeGreaterThan(50_000);
  });
});

describe("the legacy chain's alarm (KeywayState)", () => {
  it('runs its round of upkeep when the round is due, not on each alarm the roll-up or a revocation sets; idle, it sets none', async () => {
    const legacy = keywayState(ownStateNamespace());
    await legacy.initializeKeys(await generateSigningKey(Date.now()));
    const checkpoints = () =>
      runInDurableObject(legacy, (_instance, state) =>
        state.storage.sql
          .exec<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY seq')
          .toArray()
          .map(({ seq }) => seq),
      );
    const alarm = () => runInDurableObject(legacy, (_instance, state) => state.storage.getAlarm());

    // An append makes a round due a round later (KEYWAY_AUDIT_CHECKPOINT_SECONDS, 60 here).
    await legacy.append(auditEvent(), LEGACY_CHAIN);
    expect(((await alarm()) ?? Number.NaN) - Date.now()).toBeGreaterThan(50_000);
    // The alarm comes sooner for its other duties (a slice of the usage roll-up every 200 ms while it catches up, a GitHub
    // token due): each rolls up, and none signs a checkpoint, however the head moved; the round stays armed.
    for (let slice = 0; slice < 3; slice++) {
      await legacy.append(auditEvent(), LEGACY_CHAIN);
      await runInDurableObject(legacy, (_instance, state) => state.storage.setAlarm(Date.now()));
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
    }
    expect(await checkpoints()).toEqual([]);
    expect(await runInDurableObject(legacy, (_instance, state) => usageBacklog(durableObjectSql(state.storage)))).toEqual({ behind: 0, records: 4 });
    expect(((await alarm()) ?? Number.NaN) - Date.now()).toBeGreaterThan(50_000);

    // Its time come, the round signs the head.
    vi.setSystemTime(Date.now() + 61_000);
    try {
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    expect(await checkpoints()).toEqual([4]);
    // Nothing appended since, nothing to prune (no retention here), the roll-up caught up: the object is not woken again.
    expect(await alarm()).toBeNull();
  });
});
