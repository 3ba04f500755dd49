import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { writerThreadAlertStore } from '../../src/runtimes/node/writer-thread-stores.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { generateMasterKey, masterKeyId, parseMasterKey } from '../../src/core/secrets/master-keys.ts';
import { recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { auditEvent, storeContract } from '../suites/store-contract.ts';
import { connectionsTo } from '../support/connections-to.ts';
import { TEST_MAC_KEYS } from '../support/record-mac-keys.ts';
import type { ChainLink } from '../../src/core/audit/audit-event.ts';
import { ChainConflictError } from '../../src/core/audit/chain-conflict-error.ts';
import { GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';

storeContract('Node (SQLite file, group commit on a writer thread)', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
  const db = openSqliteFile(path);
  migrate(db);
  const audit = new GroupCommitAuditStore(db, path, { macKeys: TEST_MAC_KEYS });
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

  it('refuses what is asked of it once closed, and starts no writer thread for it that nothing would stop', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const audit = new GroupCommitAuditStore(db, path);
    await audit.append(auditEvent());
    await audit.close();
    await expect(audit.append(auditEvent({ id: 'after-close' }))).rejects.toThrow('the audit log is closed');
    await expect(
      audit.claim({ key: 'after-close', expiresAt: Math.floor(Date.now() / 1000) + 60, auditEventId: 'after-close', now: Date.now() }),
    ).rejects.toThrow('the audit log is closed');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n).toBe(1);
    db.close();
    // Nothing holds the file once this connection is closed: no writer (nor checkpoint) thread came back for the refused
    // work. (SQLite keeps a closed connection's descriptor while another of the process holds a lock on the file.)
    expect(connectionsTo(path)).toBe(0);
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
    // The event passed in is not sent: what is observed is the record the writer appended at the link (a denial, counted;
    // the granted event passed in would count none).
    expect((await alerts.observe(auditEvent({ decision: 'granted' }), second, options)).identityDenials).toBe(1);
    // Asked again (no longer remembered), it is read back from the log and held to the link's hash: the second denial counted.
    expect((await alerts.observe(denial, first, options)).identityDenials).toBe(2);
    await expect(alerts.observe(denial, { ...first, hash: 'ff'.repeat(32) }, options)).rejects.toThrow(/no audit record 1 with hash/);
    await audit.close();
    db.close();
  });
});

describe("the group commit audit store's upkeep reads", () => {
  it('hashes the records upkeep checks off the serving thread: its event loop turns meanwhile, and a conflict is still a ChainConflictError', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const audit = new GroupCommitAuditStore(db, path);
    const links = await Promise.all(Array.from({ length: 2000 }, () => audit.append(auditEvent())));
    const span = { from: { seq: 0, hash: GENESIS_HASH }, to: links.at(-1) as ChainLink };
    const turns = async <T>(read: () => Promise<T>): Promise<{ value: T; turns: number }> => {
      let count = 0;
      let turning = true;
      const turn = (): void => {
        if (!turning) return;
        count += 1;
        setImmediate(turn);
      };
      setImmediate(turn);
      const value = await read();
      turning = false;
      return { value, turns: count };
    };
    // On the serving thread the whole span would be read and hashed inside the call, before the loop could turn once.
    const holds = await turns(() => audit.chainHolds(span.from, span.to));
    const candidate = await turns(() => audit.pruneCandidate(Date.now() + 1000, 5000));
    expect(candidate.value).toEqual({ seq: 2000, hash: span.to.hash, withdrawals: [] });
    expect(holds.turns).toBeGreaterThan(0);
    expect(candidate.turns).toBeGreaterThan(0);
    db.run('UPDATE audit_events SET hash = ? WHERE seq = 1000', ['f'.repeat(64)]);
    await expect(audit.chainHolds(span.from, span.to)).rejects.toBeInstanceOf(ChainConflictError);
    await audit.close();
    db.close();
  });
});

describe("the group commit audit store's record MACs", () => {
  it('are made by its writer under the current master key, and held off the serving thread under a previous one too', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-store-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const [before, after] = [parseMasterKey(generateMasterKey(), 'before'), parseMasterKey(generateMasterKey(), 'after')];
    const first = new GroupCommitAuditStore(db, path, { macKeys: recordMacKeys({ current: before, previous: [] }) });
    for (let index = 0; index < 2; index += 1) await first.append(auditEvent());
    await first.close();
    // The master key changed (KEYWAY_MASTER_KEY_PREVIOUS the one before) with records after the last checkpoint.
    const audit = new GroupCommitAuditStore(db, path, { macKeys: recordMacKeys({ current: after, previous: [before] }) });
    await audit.append(auditEvent());
    const kids = db.all<{ mac: string }>('SELECT mac FROM audit_events ORDER BY seq').map(({ mac }) => mac.split('.')[0]);
    expect(kids).toEqual([masterKeyId(before), masterKeyId(before), masterKeyId(after)]);
    expect(await audit.recordMacsHold(0, 3)).toBe(0);
    await audit.close();
    db.close();
  });
});
