import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { usageCatchUpSuite } from '../suites/usage-catch-up-suite.ts';

usageCatchUpSuite('Node (SQLite file)', async () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-usage-')), 'keyway.db'));
  migrate(db);
  return { run: async (work) => work(db) };
});
