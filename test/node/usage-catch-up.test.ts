import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
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
