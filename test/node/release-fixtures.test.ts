import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { GITHUB_TOKEN_PURPOSE } from '../../src/features/github/app/revoke-due-tokens.ts';
import { readMasterKeyFile } from '../../src/storage/master-key-file.ts';
import { foreignSchemaObjects } from '../../src/storage/foreign-schema-objects.ts';
import { checkSchema, migrate, SCHEMA_VERSION } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { SqliteRevocationStore } from '../../src/storage/sqlite-revocation-store.ts';
import { type Environment, REPOSITORY_ROOT, runProcess } from './node-harness.ts';
import { maintainAuditLog } from '../../src/core/audit/maintain-audit-log.ts';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { checkpointSigner, checkpointVerifier } from '../../src/core/audit/sign-checkpoint.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';

const FIXTURES = join(REPOSITORY_ROOT, 'test/fixtures/releases');
const MASTER_KEY_FILE = join(FIXTURES, 'master.key');
const RELEASES = readdirSync(FIXTURES).filter((name) => name.endsWith('.db'));

/** A data directory holding a copy of `fixture` as its database. */
function dataDirWith(fixture: string): string {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'keyway-release-')), 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  copyFileSync(join(FIXTURES, fixture), join(dataDir, DATABASE_FILE));
  return dataDir;
}

const node = (args: readonly string[], env: Record<string, string> = {}) =>
  runProcess(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '', ...env } });

/** `npm start` with `env`, killed if it has not exited within 15 s (a broker that starts serves until then). */
async function brokerUntilExit(env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, ['src/runtimes/node/main.ts'], {
    cwd: REPOSITORY_ROOT,
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', ...env } as Environment as NodeJS.ProcessEnv,
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  return { code, output };
}

/** A fixture's database as this keyway opens it: migrated, its store writing record MACs, and upkeep under its own keys. */
async function migratedFixture(file: string) {
  const db = openSqliteFile(file);
  migrate(db);
  const master = readMasterKeyFile(MASTER_KEY_FILE);
  const store = new SqliteAuditStore(db, { macs: new RecordMacs(recordMacKeys(master)) });
  const ring = await KeyRing.from(await new SqliteKeyStore(db, await SecretBox.fromMasterKeys(master)).listKeys());
  const sign = checkpointSigner('https://keyway.test', () => ring, Date.now);
  const upkeep = () => maintainAuditLog(store, sign, { now: Date.now(), retentionDays: 0, verify: checkpointVerifier(() => ring) });
  return { db, store, upkeep };
}

/** Appends, as the broker does (with its MAC), a copy of the newest record under a new id; returns the event appended. */
async function appendAsBroker(db: SqliteFile, store: SqliteAuditStore): Promise<AuditEvent> {
  const [head] = db.all<{ event: string }>('SELECT event FROM audit_events ORDER BY seq DESC LIMIT 1');
  const event = { ...(JSON.parse(head?.event ?? '{}') as AuditEvent), id: '01KAQN6Q00B3GQ1D5M0XW8T9ZC' };
  await store.append(event);
  return event;
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('databases written by earlier releases (test/fixtures/releases, one per release)', () => {
  it('holds at least the fixture of this release line', () => {
    expect(RELEASES).toContain('0.1.0.db');
  });

  it.each(RELEASES)(
    '%s migrates to exactly the schema keyway makes, its audit log verifies, and its keys and sealed tokens open with its master key',
    async (fixture) => {
      const dataDir = dataDirWith(fixture);
      const db = openSqliteFile(join(dataDir, DATABASE_FILE));
      try {
        // keyway restore refuses a schema its migrations would not have made: the release's own, before and after the upgrade, is that.
        const written = checkSchema(db);
        expect(foreignSchemaObjects(db, written)).toEqual([]);
        migrate(db);
        expect(checkSchema(db)).toBe(SCHEMA_VERSION);
        expect(foreignSchemaObjects(db, SCHEMA_VERSION)).toEqual([]);
        const box = await SecretBox.fromMasterKeys(readMasterKeyFile(MASTER_KEY_FILE));
        const ring = await KeyRing.from(await new SqliteKeyStore(db, box).listKeys());
        expect(ring.signing.kid).toBeTypeOf('string');
        const [pending] = await new SqliteRevocationStore(db).due(Number.MAX_SAFE_INTEGER, 10);
        expect(await box.open(pending?.sealedToken ?? '', GITHUB_TOKEN_PURPOSE, pending?.id)).toBe('ghs_fixture-token');
        // Scheduled before the job's check run and the run's attempt were kept (schema 13): none, so the end of any job
        // of its run, of whatever attempt, ends the token.
        if (written < 13) {
          expect(db.all('SELECT check_run_id, run_attempt FROM github_token_revocations')).toEqual([{ check_run_id: null, run_attempt: null }]);
        }
        expect(await new SqliteRevocationStore(db).dueForEndedWork('1001', '2002', { kind: 'job', checkRunId: '3003', attempt: 1 }, 0)).toBe(1);
        expect(db.all('SELECT key FROM replay_claims')).toHaveLength(1);
      } finally {
        db.close();
      }
      const verified = await node(['src/cli/main.ts', 'audit', 'verify', '--data-dir', dataDir], {
        KEYWAY_MASTER_KEY: readFileSync(MASTER_KEY_FILE, 'utf8').trim(),
      });
      expect(verified.stdout).toMatch(/^intact: 5 records \(seq 1…5\), 1 signed checkpoints; head [0-9a-f]{64}\n$/);
      expect(verified.code).toBe(0);
    },
  );
});

describe('the records a database holds from before keyway MACed them', () => {
  it("are signed by the next upkeep (the fixture's record after its checkpoint); a record without a MAC appended since is not, whatever the store's own start says", async () => {
    const { db, upkeep } = await migratedFixture(join(dataDirWith('0.1.0.db'), DATABASE_FILE));
    try {
      // The fixture's checkpoint signs record 4; record 5, written before MACs, is where the migration found the log's end.
      expect((await upkeep()).checkpoint?.seq).toBe(5);
      expect(appendForgedRecord(db)).toBe(6);
      const refusal = 'record 6 carries no MAC, though the broker has MACed every record after 5: the broker did not append it';
      await expect(upkeep()).rejects.toThrow(refusal);
      // The store's own start moved past it counts for nothing: the checkpoint at 5 signed where MACs start.
      db.run('UPDATE audit_mac_start SET macs_after = 100');
      await expect(upkeep()).rejects.toThrow(refusal);
      expect(db.all('SELECT seq FROM audit_checkpoints ORDER BY seq')).toEqual([{ seq: 4 }, { seq: 5 }]);
    } finally {
      db.close();
    }
  });

  it("sign no start past a record the broker MACed: the store's own start, raised before the first checkpoint or with the checkpoints since deleted, lets no forged record through", async () => {
    const { db, store, upkeep } = await migratedFixture(join(dataDirWith('0.1.0.db'), DATABASE_FILE));
    try {
      // The broker appends record 6 (with its MAC); whoever writes the file moves the store's start past it before any
      // checkpoint signed where MACs start.
      await appendAsBroker(db, store);
      db.run('UPDATE audit_mac_start SET macs_after = 100');
      expect((await upkeep()).checkpoint?.seq).toBe(6);
      expect(appendForgedRecord(db)).toBe(7);
      const refusal = 'record 7 carries no MAC, though the broker has MACed every record after 5: the broker did not append it';
      await expect(upkeep()).rejects.toThrow(refusal);
      // Every checkpoint that signed where MACs start deleted: the MACed record 6 still says they start before it.
      db.run('DELETE FROM audit_checkpoints WHERE seq > 4');
      await expect(upkeep()).rejects.toThrow(refusal);
      expect(db.all('SELECT seq FROM audit_checkpoints ORDER BY seq')).toEqual([{ seq: 4 }]);
    } finally {
      db.close();
    }
  });
});

describe('a backup whose records after its last checkpoint carry no MAC', () => {
  const restore = (backup: string) =>
    node([
      'src/cli/main.ts',
      'restore',
      '--backup',
      backup,
      '--data-dir',
      join(mkdtempSync(join(tmpdir(), 'keyway-restore-')), 'data'),
      '--master-key-file',
      MASTER_KEY_FILE,
    ]);
  const note = (backup: string, schema: number, records: string) =>
    `note: the audit log in ${backup} (schema version ${schema}) holds records without a MAC after its last signed checkpoint (seq ${records}), ` +
    'taken as written before keyway made MACs: nothing vouches for them';

  it('is restored with a note naming them, of a schema from before record MACs: one appended to it among them', async () => {
    const backup = join(dataDirWith('0.1.0.db'), DATABASE_FILE);
    const db = openSqliteFile(backup);
    expect(appendForgedRecord(db)).toBe(6);
    db.close();
    const restored = await restore(backup);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toContain(note(backup, 7, '5…6'));
  });

  /** The fixture as a broker of this keyway leaves it: migrated, a record appended with its MAC, and the head signed at 6 (MACs after 5). */
  const backedUpSinceMacs = async () => {
    const backup = join(dataDirWith('0.1.0.db'), DATABASE_FILE);
    const { db, store, upkeep } = await migratedFixture(backup);
    const event = await appendAsBroker(db, store);
    expect((await upkeep()).checkpoint?.seq).toBe(6);
    return { backup, db, store, event };
  };

  it('is restored with a note naming them, of this schema made to look older: MACs and the checkpoints that signed their start taken out', async () => {
    const { backup, db } = await backedUpSinceMacs();
    db.close();
    const untouched = await restore(backup);
    expect(untouched.code, untouched.stderr).toBe(0);
    expect(untouched.stderr).not.toContain('without a MAC');
    const tampered = openSqliteFile(backup);
    tampered.run('DELETE FROM audit_checkpoints WHERE seq > 4');
    tampered.run('UPDATE audit_events SET mac = NULL');
    tampered.run('UPDATE audit_mac_start SET macs_after = 100');
    expect(appendForgedRecord(tampered)).toBe(7);
    tampered.close();
    const restored = await restore(backup);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toContain(note(backup, SCHEMA_VERSION, '5…7'));
  });

  it("is refused with a MACed record after its newest checkpoint stripped of its MAC: the start that checkpoint signs counts, not the store's raised", async () => {
    const { backup, db, store, event } = await backedUpSinceMacs();
    await store.append({ ...event, id: '01KAQN6Q00B3GQ1D5M0XW8T9ZD' });
    db.run('UPDATE audit_events SET mac = NULL WHERE seq = 7');
    db.run('UPDATE audit_mac_start SET macs_after = 100');
    db.close();
    const restored = await restore(backup);
    expect(restored.code).toBe(1);
    expect(restored.stderr).toContain(
      'holds a record the broker did not append: record 7 carries no MAC, though the broker has MACed every record after 5: the broker did not append it. Nothing was restored',
    );
  });
});

describe('a database written by a newer keyway', () => {
  /** The current fixture, as a newer release would leave it: one more migration, and what it created. */
  function newerDataDir(): { dataDir: string; database: string; digest: string } {
    const dataDir = dataDirWith('0.1.0.db');
    const database = join(dataDir, DATABASE_FILE);
    const db = openSqliteFile(database);
    migrate(db);
    db.run('INSERT INTO keyway_schema (id, applied_at) VALUES (?, ?)', [SCHEMA_VERSION + 1, Date.now()]);
    db.exec('CREATE TABLE from_the_future (x TEXT)');
    db.close();
    return { dataDir, database, digest: sha256(database) };
  }
  const refusal = `schema version ${SCHEMA_VERSION + 1}, newer than the ${SCHEMA_VERSION} this keyway knows`;

  it('stops the Node broker (npm start) with both versions named, before anything is written', { timeout: 30_000 }, async () => {
    const { dataDir, database, digest } = newerDataDir();
    const started = await brokerUntilExit({ KEYWAY_DATA_DIR: dataDir, KEYWAY_MASTER_KEY: readFileSync(MASTER_KEY_FILE, 'utf8').trim() });
    expect(started.output).toContain(refusal);
    expect(started.output).not.toContain('keyway listening');
    expect(started.code).toBe(1);
    expect(sha256(database)).toBe(digest);
  });

  it('is refused by every CLI command that opens it, reading or writing', async () => {
    const { dataDir, database, digest } = newerDataDir();
    const env = { KEYWAY_MASTER_KEY: readFileSync(MASTER_KEY_FILE, 'utf8').trim() };
    for (const args of [
      ['audit', 'verify', '--data-dir', dataDir],
      ['audit', 'query', '--data-dir', dataDir],
      ['keys', 'list', '--data-dir', dataDir],
      ['keys', 'rotate', '--data-dir', dataDir],
    ]) {
      const result = await node(['src/cli/main.ts', ...args], env);
      expect(result.stderr, args.join(' ')).toContain(refusal);
      expect(result.code, args.join(' ')).not.toBe(0);
    }
    expect(sha256(database)).toBe(digest);
  }, 60_000);
});
