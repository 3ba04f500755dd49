import { describe, expect, it } from 'vitest';
import { UsageCatchingUpError } from '../../src/core/audit/inventory.ts';
import { readAlertSettings } from '../../src/features/alerts/alert-settings.ts';
import { alertRaiser, STALE_GRANT_CHECK_MS } from '../../src/features/alerts/raise-alerts.ts';
import { silentLogger } from '../../src/core/log.ts';
import { policySetOf } from '../../src/core/policy/load-policies.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SqliteAlertStore } from '../../src/storage/sqlite-alert-store.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteMemory } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { seedUsageRecords } from '../suites/usage-catch-up-suite.ts';

const DAY = 86_400_000;

/**
 * The stale_grant rule alone, over `audit`'s real store, counting its reads of the store's `counted` method; `exchange`
 * appends a record at `now()` and runs the rule on it, as an answered exchange does.
 */
function staleGrantOver(db: ReturnType<typeof openSqliteMemory>, audit: SqliteAuditStore, counted: 'usage' | 'query', now: () => number) {
  let reads = 0;
  const counting = <T>(method: 'usage' | 'query', read: () => T): T => {
    if (method === counted) reads += 1;
    return read();
  };
  const raise = alertRaiser({
    store: new SqliteAlertStore(db),
    settings: readAlertSettings({ KEYWAY_ALERT_RULES: 'stale_grant', KEYWAY_ALERT_STALE_GRANT_DAYS: '1' }, false),
    policies: () => policySetOf({ files: [], problems: [], brokerIssuer: 'https://keyway.test' }),
    webhook: undefined,
    now,
    log: silentLogger,
    audit: {
      usage: (query) => counting('usage', () => audit.usage(query)),
      query: (query) => counting('query', () => audit.query(query)),
    },
  });
  return {
    reads: () => reads,
    exchange: async () => {
      const event = auditEvent({ time: new Date(now()).toISOString() });
      await raise(event, await audit.append(event));
    },
  };
}

describe('stale_grant on a log younger than its period', () => {
  it('reads the log once, not after every answered exchange, until its oldest record is old enough; then looks again', async () => {
    const db = openSqliteMemory();
    migrate(db);
    const audit = new SqliteAuditStore(db);
    const first = Date.parse('2026-12-01T12:00:00Z');
    let clock = first;
    const rule = staleGrantOver(db, audit, 'query', () => clock);
    const exchange = rule.exchange;

    await exchange();
    expect(rule.reads()).toBe(1);
    // Hours later, beyond the hourly throttle, the first record is still under a day old: nothing can be stale yet.
    clock += 2 * STALE_GRANT_CHECK_MS;
    for (let index = 0; index < 5; index += 1) await exchange();
    expect(rule.reads()).toBe(1);
    // Once the first record is a day old, the rule reads the log again (and then at most hourly).
    clock = first + DAY + 1000;
    await exchange();
    expect(rule.reads()).toBe(2);
    await exchange();
    expect(rule.reads()).toBe(2);
    db.close();
  });
});

describe('stale_grant while the usage roll-up catches up', () => {
  it("reads the usage again after the refusal's Retry-After, not after every answered exchange; caught up, hourly", async () => {
    const db = openSqliteMemory();
    migrate(db);
    // Ten records from days back not rolled up, more than this store lets a read sum: its reads are refused as catching up.
    seedUsageRecords(db, 10);
    const audit = new SqliteAuditStore(db, { usage: { batch: 100, readBacklog: 5 } });
    let clock = Date.parse('2026-12-01T12:00:00Z');
    const rule = staleGrantOver(db, audit, 'usage', () => clock);
    const exchange = rule.exchange;

    await exchange();
    expect(rule.reads()).toBe(1);
    await expect(audit.usage({ since: 0, until: clock })).rejects.toBeInstanceOf(UsageCatchingUpError);
    // Exchanges within the refusal's Retry-After leave the log alone.
    for (let index = 0; index < 5; index += 1) {
      clock += 1000;
      await exchange();
    }
    expect(rule.reads()).toBe(1);
    clock += UsageCatchingUpError.RETRY_AFTER_SECONDS * 1000;
    await exchange();
    expect(rule.reads()).toBe(2);

    // Caught up, the read is answered; the next is an hour on.
    while (audit.rollUpUsage(1000).behind > 0);
    clock += UsageCatchingUpError.RETRY_AFTER_SECONDS * 1000;
    await exchange();
    expect(rule.reads()).toBe(3);
    clock += UsageCatchingUpError.RETRY_AFTER_SECONDS * 1000;
    await exchange();
    expect(rule.reads()).toBe(3);
    clock += STALE_GRANT_CHECK_MS;
    await exchange();
    expect(rule.reads()).toBe(4);
    db.close();
  });
});
