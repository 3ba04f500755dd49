import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteFile } from '../../src/node/sqlite-file.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { storeContract } from '../suites/store-contract.ts';

storeContract('Node (SQLite file)', async () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db'));
  migrate(db);
  return { audit: new SqliteAuditStore(db), keys: new SqliteKeyStore(db) };
});
