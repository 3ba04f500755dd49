import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { writerThreadAlertStore } from '../../src/runtimes/node/writer-thread-stores.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { describe, expect, it } from 'vitest';
import { auditEvent, storeContract } from '../suites/store-contract.ts';

storeContract('Node (SQLite file, group commit on a writer thread)', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
  const db = openSqliteFile(path);
  migrate(db);
  const audit = new GroupCommitAuditStore(db, path);
  return {
    audit,
    keys: new SqliteKeyStore(db, await SecretBox.fromMasterKeys({ current: parseMasterKey(generateMasterKey(), 'test'), previous: [] })),
    alerts: writerThreadAlertStore(audit, db),
    tamper: async (sql, params) => void db.run(sql, params),
  };
});

describe('the group commit audit store on close', () => {
  it('commits the appends already made before its writer stops (the group commit flushed)', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const audit = new GroupCommitAuditStore(db, path);
    const appended = Array.from({ length: 20 }, (_, index) => audit.append(auditEvent({ id: `flush-${index}` })));
    await audit.close();
    const links = await Promise.all(appended);
    expect(links.map((link) => link.seq)).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n).toBe(20);
    db.close();
  });
});
