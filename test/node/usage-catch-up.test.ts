import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { jsonLogger, silentLogger } from '../../src/core/log.ts';
import { DATABASE_FILE, startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { usageBacklog } from '../../src/storage/sqlite-audit-usage.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { usageCatchUpSuite } from '../suites/usage-catch-up-suite.ts';
import { testConfig, writeTree } from './node-harness.ts';

usageCatchUpSuite('Node (SQLite file)', async () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-usage-')), 'keyway.db'));
  migrate(db);
  return { run: async (work) => work(db) };
});

it('keeps rolling up between upkeep rounds: records that come after a caught-up round are rolled up within seconds', async () => {
  const root = writeTree({ 'policies/none.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x }\n' });
  const config = testConfig(root);
  // The upkeep round (and so its slice) runs at start, then only every KEYWAY_AUDIT_CHECKPOINT_SECONDS (60).
  const broker = await startNodeBroker(config, { log: silentLogger, usageRollUp: { batch: 10, readBacklog: 5 } });
  const reader = openSqliteFile(join(config.dataDir, DATABASE_FILE));
  try {
    for (let i = 0; i < 30; i++) {
      const answer = await fetch(`${broker.url}/token`, { method: 'POST', body: exchangeForm(`not-a-token-${i}`) });
      expect(answer.status).toBe(400);
    }
    expect(usageBacklog(reader).records).toBeGreaterThanOrEqual(30);
    await expect.poll(() => usageBacklog(reader).behind, { timeout: 6000, interval: 200 }).toBe(0);
  } finally {
    reader.close();
    await broker.close();
  }
});

it('logs a roll-up batch that fails and tries it again two seconds later; exchanges are answered and recorded meanwhile', { timeout: 30_000 }, async () => {
  const root = writeTree({ 'policies/none.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x }\n' });
  const config = testConfig(root);
  const lines: string[] = [];
  const broker = await startNodeBroker(config, { log: jsonLogger({}, { write: (line) => lines.push(line) }) });
  const file = openSqliteFile(join(config.dataDir, DATABASE_FILE));
  const failures = () =>
    lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line['message'] === 'usage roll-up failed: the audit writer tries it again later');
  const recorded = () => file.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n ?? 0;
  const exchanges = async (count: number) => {
    for (let i = 0; i < count; i++) {
      expect((await fetch(`${broker.url}/token`, { method: 'POST', body: exchangeForm(`not-a-token-${i}`) })).status).toBe(400);
    }
  };
  try {
    // A real failure on the writer's own connection: the file refuses the roll-up's watermark (a trigger, as whoever can
    // write the file could add; a full disk or a damaged page fails the same statement).
    file.exec("CREATE TRIGGER refuse_roll_up BEFORE INSERT ON audit_usage_state BEGIN SELECT RAISE(ABORT, 'roll-up refused'); END");
    await exchanges(10);
    await expect.poll(() => failures().length, { timeout: 8000, interval: 100 }).toBeGreaterThanOrEqual(1);
    expect(failures()[0]).toMatchObject({ level: 'error', error: 'SqliteError: roll-up refused', retry_in_ms: 2000 });

    // Meanwhile every exchange is answered, its record committed, and the batch rolled back whole.
    await exchanges(10);
    expect(recorded()).toBe(20);
    expect(usageBacklog(file)).toEqual({ behind: 20, records: 20 });

    // Tried again two seconds later, then twice as long after each failure (a lasting fault logs a line a minute at most).
    await expect.poll(() => failures().length, { timeout: 8000, interval: 100 }).toBeGreaterThanOrEqual(2);
    const [first, second] = failures().map((line) => Date.parse(String(line['time'])));
    expect((second as number) - (first as number)).toBeGreaterThanOrEqual(1900);
    expect(failures()[1]).toMatchObject({ retry_in_ms: 4000 });

    // Once the batch can commit, the next try rolls everything up.
    file.exec('DROP TRIGGER refuse_roll_up');
    await expect.poll(() => usageBacklog(file).behind, { timeout: 10_000, interval: 100 }).toBe(0);
    expect(recorded()).toBe(20);
  } finally {
    file.close();
    await broker.close();
  }
});
