import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AuditFilter, AuditQuery } from '../../src/core/audit/audit-query.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SORTED_SPAN, SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import type { SqlDatabase, SqlValue } from '../../src/storage/sql-database.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from '../suites/store-contract.ts';

const HOUR = 3_600_000;
const BASE = Date.parse('2026-03-10T00:00:00Z');

/** A store over a real file whose every statement is kept, to be explained on that file. */
async function recordedStore() {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-plan-')), 'keyway.db'));
  migrate(db);
  const statements: { sql: string; params: readonly SqlValue[] }[] = [];
  const recorded: SqlDatabase = {
    exec: (sql) => db.exec(sql),
    run: (sql, params) => db.run(sql, params),
    all: (sql, params = []) => {
      statements.push({ sql, params });
      return db.all(sql, params);
    },
    transaction: (fn) => db.transaction(fn),
    read: (fn) => db.read(fn),
  };
  const audit = new SqliteAuditStore(recorded);
  // Ten hours of records, and one of a slow request, dated when it began, appended last.
  await audit.appendAll(Array.from({ length: 10 }, (_, hour) => auditEvent({ time: new Date(BASE + hour * HOUR).toISOString() })));
  await audit.append(auditEvent({ time: new Date(BASE + 2.5 * HOUR).toISOString() }));
  /** SQLite's plan of each statement a query runs, a line per step. */
  const plans = async (query: AuditQuery): Promise<string[]> => {
    statements.length = 0;
    await audit.query(query);
    return statements.flatMap(({ sql, params }) => db.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, params).map((row) => row.detail));
  };
  return { plans, audit };
}

describe('a time-bounded audit search', () => {
  it('reads only its window: every step over audit_events is a SEARCH (the time index, then a seq range), none a SCAN', async () => {
    const { plans } = await recordedStore();
    const windows: AuditFilter[] = [
      { since: BASE + 8 * HOUR },
      { until: BASE + HOUR },
      { since: BASE + 2 * HOUR, until: BASE + 3 * HOUR },
      { since: BASE + 2 * HOUR, until: BASE + 3 * HOUR, decisions: ['denied'] },
      { since: BASE + 2 * HOUR, reasons: ['no_policy_matched'], issuer: 'https://ci.example' },
    ];
    for (const window of windows) {
      for (const order of ['asc', 'desc'] as const) {
        for (const by of ['seq', 'id'] as const) {
          const steps = await plans({ ...window, order, by, limit: 2 });
          expect(
            steps.filter((step) => step.startsWith('SCAN audit_events')),
            JSON.stringify({ window, order, by, steps }),
          ).toEqual([]);
          expect(steps.some((step) => step.startsWith('SEARCH audit_events USING COVERING INDEX audit_events_time'))).toBe(true);
          expect(steps.some((step) => step.startsWith('SEARCH audit_events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)'))).toBe(true);
        }
      }
    }
  });
});

describe('a time window around the whole log', () => {
  it('reads the log in seq order and stops at the page end, as a search without one does: nothing read by time and sorted', async () => {
    const { plans } = await recordedStore();
    for (const order of ['asc', 'desc'] as const) {
      const steps = await plans({ since: BASE - HOUR, until: BASE + 20 * HOUR, order, limit: 2 });
      expect(steps).not.toContain('USE TEMP B-TREE FOR ORDER BY');
      expect(steps.filter((step) => step.includes('audit_events_time (time'))).toEqual([]);
      // Nor the time index read end to end for a span every record is in: only its two ends are looked at.
      expect(steps.filter((step) => step.startsWith('SCAN audit_events'))).toEqual(['SCAN audit_events']);
    }
  });
});

describe('a time window that holds no record', () => {
  it('is answered from the time index alone: no record is read, before, after or between the records', async () => {
    const { plans, audit } = await recordedStore();
    const windows: AuditFilter[] = [{ since: BASE + 20 * HOUR }, { until: BASE - HOUR }, { since: BASE + 3.25 * HOUR, until: BASE + 3.75 * HOUR }];
    for (const window of windows) {
      for (const by of ['seq', 'id'] as const) {
        const query = { ...window, by, order: 'desc' as const, limit: 2 };
        expect(await audit.query(query)).toEqual({ records: [] });
        const steps = await plans(query);
        expect(
          steps.filter((step) => step.startsWith('SCAN audit_events') || step.includes('INTEGER PRIMARY KEY')),
          JSON.stringify({ window, by, steps }),
        ).toEqual([]);
      }
    }
  });
});

describe('a wide time window in id order (a shard of a sharded log)', () => {
  it('walks the id index, passing over the entries outside the window by their seq, and reads the records a sort would', async () => {
    const { plans, audit } = await recordedStore();
    const count = SORTED_SPAN + 10;
    // Ids against seq order, as several writers' reach one chain.
    const events = Array.from({ length: count }, (_, index) =>
      auditEvent({ id: `01WIDE${String((index * 7919) % count).padStart(20, '0')}`, time: new Date(BASE + 20 * HOUR + index).toISOString() }),
    );
    await audit.appendAll(events);
    const window = { since: BASE + 20 * HOUR + 5, until: BASE + 20 * HOUR + count - 1 };
    const ids = events
      .slice(5, count - 1)
      .map((event) => event.id)
      .sort();
    for (const order of ['asc', 'desc'] as const) {
      const query = { ...window, by: 'id' as const, order, limit: 3 };
      expect(await plans(query)).toContain('SCAN audit_events USING INDEX sqlite_autoindex_audit_events_1');
      const first = await audit.query(query);
      const second = await audit.query({ ...query, after: first.next as string });
      const expected = order === 'asc' ? ids : [...ids].reverse();
      expect([...first.records, ...second.records].map((record) => record.event.id)).toEqual(expected.slice(0, 6));
    }
  });
});
