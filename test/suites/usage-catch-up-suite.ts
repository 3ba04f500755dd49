import { describe, expect, it } from 'vitest';
import { UsageCatchingUpError, type UsageRow } from '../../src/core/audit/inventory.ts';
import type { SqlDatabase } from '../../src/storage/sql-database.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { AUDIT_USAGE_REBUILD, usageBacklog } from '../../src/storage/sqlite-audit-usage.ts';

const DAY = 86_400_000;
/** Noon, three days before a fixed `until`: whole days the roll-up answers for. */
const UNTIL = Date.UTC(2026, 10, 20);

/**
 * Appends `count` records straight into the log, as the rows the roll-up reads (the chain's columns are not its concern):
 * over three days, each a grant or a refusal of one of three repositories.
 */
export function seedUsageRecords(db: SqlDatabase, count: number): void {
  db.run(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
      INSERT INTO audit_events (id, time, decision, reason, issuer, repository, policy_id, event)
      SELECT printf('rec-%06d', i), ? + (i % 3) * ? + i, CASE WHEN i % 4 = 0 THEN 'denied' ELSE 'granted' END,
        CASE WHEN i % 4 = 0 THEN 'denied_by_policy' ELSE 'granted' END, 'https://ci.test', 'acme/repo-' || (i % 3),
        CASE WHEN i % 4 = 0 THEN NULL ELSE 'deploy' END,
        json_object('issuer', 'https://ci.test', 'claims', json_object('ref', 'refs/heads/main'))
      FROM n`,
    [count, UNTIL - 3 * DAY + DAY / 2, DAY],
  );
}

const total = (rows: readonly UsageRow[]) => rows.reduce((sum, row) => sum + row.count, 0);

/**
 * The usage roll-up emptied by a migration (schema 21) is caught up by upkeep a slice at a time; a read while more than it
 * may sum is behind is refused as catching up, never answered short; once caught up, every count is the records'.
 */
export function usageCatchUpSuite(runtime: string, open: () => Promise<{ run: <T>(work: (db: SqlDatabase) => T) => Promise<T> }>): void {
  describe(`the usage roll-up catching up on ${runtime}`, () => {
    it('is caught up by upkeep slices alone; a read while far behind is refused with how far, and counts the records once caught up', async () => {
      const { run } = await open();
      const window = { since: UNTIL - 7 * DAY, until: UNTIL };
      const store = (db: SqlDatabase) => new SqliteAuditStore(db, { usage: { batch: 100, readBacklog: 300 } });
      await run((db) => {
        seedUsageRecords(db, 1000);
        db.exec(AUDIT_USAGE_REBUILD);
      });

      const refused = await run((db) =>
        store(db)
          .usage(window)
          .then(
            () => undefined,
            (error: unknown) => error,
          ),
      );
      expect(refused).toBeInstanceOf(UsageCatchingUpError);
      expect((refused as UsageCatchingUpError).progress).toEqual({ behind: 1000, records: 1000 });
      expect((refused as UsageCatchingUpError).message).toMatch(/catching up .*: 1000 of its 1000 records are not rolled up yet/);
      // The refused read summed nothing and rolled up nothing.
      expect(await run((db) => usageBacklog(db))).toEqual({ behind: 1000, records: 1000 });

      // Each slice (a budget of 0: one batch) moves the watermark on by one batch, no read needed.
      const slices: number[] = [];
      for (let round = 0; round < 20; round++) {
        const { behind } = await run((db) => store(db).rollUpUsage(0));
        slices.push(behind);
        if (behind === 0) break;
      }
      expect(slices).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);

      // Caught up: the counts are the records', as a store that sums them all from the records reads them.
      const fromRecords = await run((db) => {
        db.exec(AUDIT_USAGE_REBUILD);
        return new SqliteAuditStore(db, { usage: { batch: 100, readBacklog: Number.POSITIVE_INFINITY } }).usage(window);
      });
      expect(total(fromRecords)).toBe(1000);
      for (let round = 0; round < 20 && (await run((db) => store(db).rollUpUsage(1000))).behind > 0; round++);
      const rolled = await run((db) => store(db).usage(window));
      const byGroup = (rows: readonly UsageRow[]) => {
        const sums = new Map<string, number>();
        for (const row of rows) {
          const key = JSON.stringify([row.repository, row.decision, row.reason, row.policy_id]);
          sums.set(key, (sums.get(key) ?? 0) + row.count);
        }
        return Object.fromEntries([...sums].sort());
      };
      expect(byGroup(rolled)).toEqual(byGroup(fromRecords));
    });

    it('answers a read with a backlog it may sum: rolled up within its budget, the rest from the records, the total exact', async () => {
      const { run } = await open();
      const window = { since: UNTIL - 7 * DAY, until: UNTIL };
      await run((db) => {
        seedUsageRecords(db, 250);
        db.exec(AUDIT_USAGE_REBUILD);
      });
      const rows = await run((db) => new SqliteAuditStore(db, { usage: { batch: 100, readBacklog: 300 } }).usage(window));
      expect(total(rows)).toBe(250);
    });
  });
}
