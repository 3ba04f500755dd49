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
import canonicalize from 'canonicalize';
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

describe('the group commit audit store hands each event to its writer once', () => {
  const open = () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const audit = new GroupCommitAuditStore(db, path);
    return { db, audit, alerts: writerThreadAlertStore(audit, db) };
  };

  it('stores the JCS text the chain hashes, encoded on the serving thread', async () => {
    const { db, audit } = open();
    const event = auditEvent({ claims: { z: 1, '10': 'ten', '2': 'two', repository: 'acme/api' } });
    const link = await audit.append(event);
    const [row] = db.all<{ event: string; hash: string; repository: string }>('SELECT event, hash, repository FROM audit_events WHERE seq = ?', [link.seq]);
    expect(row).toEqual({ event: canonicalize(event), hash: link.hash, repository: 'acme/api' });
    await audit.close();
    db.close();
  });

  it('observes an appended event by its link alone: the writer knows it, and a link it did not write is refused', async () => {
    const { db, audit, alerts } = open();
    const denial = auditEvent({ issuer: 'https://ci.example', subject: 'repo:acme/api', reason: 'no_policy_matched' });
    const first = await audit.append(denial);
    const second = await audit.append({ ...auditEvent(), issuer: 'https://ci.example', subject: 'repo:acme/api' });
    const options = { windowStart: 0 };
    // The event passed in is not sent: what is observed is the record the writer appended at the link.
    expect((await alerts.observe(auditEvent({ decision: 'granted' }), second, options)).identityDenials).toBe(2);
    // Asked again (no longer remembered), it is read back from the log and held to the link's hash.
    expect((await alerts.observe(denial, first, options)).identityDenials).toBe(1);
    await expect(alerts.observe(denial, { ...first, hash: 'ff'.repeat(32) }, options)).rejects.toThrow(/no audit record 1 with hash/);
    await audit.close();
    db.close();
  });
});
