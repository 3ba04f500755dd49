import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { LIVE_POLICY_ATTESTATION_PURPOSE, livePolicyAttestationText } from '../../src/core/policy/live-policy-attestation.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { readMasterKeyFile } from '../../src/storage/master-key-file.ts';
import { LIVE_POLICY_ATTESTATION_SCHEMA, migrate, SCHEMA_VERSION } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import { BROKER_ISSUER, type Environment, REPOSITORY_ROOT, runProcess, spawnBroker, writeTree } from './node-harness.ts';

const FIXTURE = join(REPOSITORY_ROOT, 'test/fixtures/releases/0.1.0.db');
const FIXTURE_KEY_FILE = join(REPOSITORY_ROOT, 'test/fixtures/releases/master.key');
const FIXTURE_KEY = readFileSync(FIXTURE_KEY_FILE, 'utf8').trim();

const keyway = (args: readonly string[], env: Environment = {}) =>
  runProcess(process.execPath, ['src/cli/main.ts', ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const scratch = (): string => mkdtempSync(join(tmpdir(), 'keyway-backup-'));

/** A data directory holding the release fixture's database (and its master.key, as the embedded default keeps it). */
function fixtureDataDir(): string {
  const dataDir = join(scratch(), 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  copyFileSync(FIXTURE, join(dataDir, DATABASE_FILE));
  copyFileSync(FIXTURE_KEY_FILE, join(dataDir, 'master.key'));
  return dataDir;
}

/** A verified backup of the fixture. */
async function fixtureBackup(): Promise<string> {
  const output = join(scratch(), 'keyway.backup');
  const result = await keyway(['backup', '--data-dir', fixtureDataDir(), '--output', output]);
  expect(result.code, result.stderr).toBe(0);
  return output;
}

const HOLDS = '5 audit records (seq 1…5), 1 signed checkpoints, 1 signing keys; head ';
/** The fixture's schema as backed up, and as restore leaves it: migrated to this keyway's. */
const BACKED_UP = `schema version 7, ${HOLDS}`;
const RESTORED = `schema version ${SCHEMA_VERSION}, ${HOLDS}`;
/** What a restore of the fixture notes of its record after its checkpoint, written before record MACs: nothing vouches for it. */
const unmacedNote = (backup: string, schema: number): string =>
  `note: the audit log in ${backup} (schema version ${schema}) holds records without a MAC after its last signed checkpoint (seq 5…5), taken as ` +
  'written before keyway made MACs: nothing vouches for them, and the restored broker signs them as its own. Whoever could write the ' +
  'backup could have appended them: read them (keyway audit query --data-dir DIR) before a broker starts on it\n';
/** What every successful restore notes: revocations after the backup are not in it (docs/operations/backup-and-upgrade.md). */
const RESTORE_NOTE =
  'note: keyway tokens revoked after this backup was taken (POST /revoke, or when their GitHub Actions job ended) are not revoked in it: ' +
  'each verifies again until its exp, at most KEYWAY_MAX_TTL_SECONDS after it was issued. Have their holders revoke them again, or start ' +
  'the broker only once KEYWAY_MAX_TTL_SECONDS have passed since the old one last served. Nor does it know the GitHub Actions jobs that ' +
  'completed since: their OIDC tokens are exchanged again until they expire, within 10 minutes of being issued; redeliver the ' +
  'workflow_job and workflow_run deliveries that failed meanwhile\n';

describe('keyway backup', () => {
  it('writes a verified, owner-only snapshot that holds no master key, even with master.key in the data directory', async () => {
    const dataDir = fixtureDataDir();
    const output = join(scratch(), 'keyway.backup');
    const result = await keyway(['backup', '--data-dir', dataDir, '--output', output]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`backup written to ${output}: ${BACKED_UP}`);
    expect(result.code).toBe(0);
    expect(statSync(output).mode & 0o777).toBe(0o600);
    // The file alone, whole: no temporary file, no -wal or -shm left beside it.
    expect(readdirSync(join(output, '..'))).toEqual(['keyway.backup']);
    const bytes = readFileSync(output);
    const key = Buffer.from(FIXTURE_KEY, 'base64url');
    expect(bytes.includes(key)).toBe(false);
    expect(bytes.includes(Buffer.from(FIXTURE_KEY))).toBe(false);
    expect(bytes.includes(Buffer.from('ghs_fixture-token'))).toBe(false);
  });

  it('refuses a missing data directory, one with no keyway database, and an existing target, leaving everything as it was', async () => {
    const output = join(scratch(), 'keyway.backup');
    const missing = await keyway(['backup', '--data-dir', join(scratch(), 'nope'), '--output', output]);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyway: no data directory at .*nope\n$/) });
    const empty = await keyway(['backup', '--data-dir', scratch(), '--output', output]);
    expect(empty).toMatchObject({ code: 1, stderr: expect.stringContaining(`is not a keyway data directory: it has no ${DATABASE_FILE}`) });
    expect(existsSync(output)).toBe(false);

    const dataDir = fixtureDataDir();
    const before = sha256(join(dataDir, DATABASE_FILE));
    writeFileSync(output, 'an older backup');
    const exists = await keyway(['backup', '--data-dir', dataDir, '--output', output]);
    expect(exists).toMatchObject({ code: 1, stderr: `keyway: ${output} exists: keyway backup never overwrites a file\n` });
    expect(readFileSync(output, 'utf8')).toBe('an older backup');
    expect(sha256(join(dataDir, DATABASE_FILE))).toBe(before);
  });

  it.runIf(process.getuid?.() === 0)(
    "refuses, as root, a data directory the broker's own user owns by telling to run it as that user, never to chown it away from the broker",
    async () => {
      const dataDir = fixtureDataDir();
      // The broker runs as uid 65534: its data directory is that user's alone. A cron job of root backs it up.
      for (const name of ['', DATABASE_FILE, 'master.key']) chownSync(join(dataDir, name), 65534, 65534);
      const result = await keyway(['backup', '--data-dir', dataDir, '--output', join(scratch(), 'keyway.backup')]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('uid 65534');
      expect(result.stderr).not.toContain('chown it');
      expect(result.stderr).not.toContain('a directory that does not exist yet');
    },
  );

  it('keeps the snapshot of a database holding a trigger keyway does not make, but exits 1 naming it', async () => {
    const dataDir = fixtureDataDir();
    const db = openSqliteFile(join(dataDir, DATABASE_FILE));
    db.exec('CREATE TRIGGER forget AFTER INSERT ON replay_claims BEGIN DELETE FROM replay_claims; END');
    db.close();
    const output = join(scratch(), 'keyway.backup');
    const result = await keyway(['backup', '--data-dir', dataDir, '--output', output]);
    expect(result).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyway: .* holds schema objects keyway does not make: trigger forget\./) });
    expect(existsSync(output)).toBe(true);
  });

  it('refuses a target it cannot write, and leaves no half file', async () => {
    const root = scratch();
    writeFileSync(join(root, 'a-file'), '');
    for (const output of [join(root, 'no-such-dir', 'keyway.backup'), join(root, 'a-file', 'keyway.backup')]) {
      const result = await keyway(['backup', '--data-dir', fixtureDataDir(), '--output', output]);
      expect(result).toMatchObject({ code: 1, stderr: expect.stringContaining(`keyway: cannot write the backup to ${output}: `) });
    }
    expect(readdirSync(root)).toEqual(['a-file']);
  });
});

describe('keyway restore', () => {
  it('restores into a new owner-only directory, verified, with the keys opening under the master key given', async () => {
    const backup = await fixtureBackup();
    // As a file fetched back from backup storage under a default umask would be: the restored database is 0600 all the same.
    chmodSync(backup, 0o644);
    const dataDir = join(scratch(), 'restored');
    const result = await keyway(['restore', '--backup', backup, '--data-dir', dataDir, '--master-key-file', FIXTURE_KEY_FILE]);
    // Nothing but the note that the fixture's record after its checkpoint, from before record MACs, is vouched for by
    // nothing, and the one that keyway tokens revoked since the backup are live again until they expire.
    expect(result.stderr).toBe(`${unmacedNote(backup, 7)}${RESTORE_NOTE}`);
    expect(result.stdout).toContain(`restored into ${dataDir}: ${RESTORED}`);
    expect(result.code).toBe(0);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dataDir)).toEqual([DATABASE_FILE]);
    expect(statSync(join(dataDir, DATABASE_FILE)).mode & 0o777).toBe(0o600);
    const verified = await keyway(['audit', 'verify', '--data-dir', dataDir], { KEYWAY_MASTER_KEY: FIXTURE_KEY });
    expect(verified).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: 5 records/) });
    // The master key from the environment works the same.
    const fromEnv = await keyway(['restore', '--backup', backup, '--data-dir', join(scratch(), 'env')], { KEYWAY_MASTER_KEY: FIXTURE_KEY });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
  });

  it('never overwrites a data directory that holds a database (a running broker’s, or an old one)', async () => {
    const backup = await fixtureBackup();
    const live = fixtureDataDir();
    const before = sha256(join(live, DATABASE_FILE));
    const result = await keyway(['restore', '--backup', backup, '--data-dir', live, '--master-key-file', FIXTURE_KEY_FILE]);
    expect(result).toMatchObject({ code: 1, stderr: expect.stringContaining(`${live} holds ${DATABASE_FILE} already`) });
    expect(sha256(join(live, DATABASE_FILE))).toBe(before);
    expect(readdirSync(live).sort()).toEqual([DATABASE_FILE, 'master.key']);
  });

  /** Restores `backup` into a new directory with `args`, expects the refusal `message`, and that nothing was left behind. */
  async function refused(backup: string, message: string | RegExp, env: Environment = {}, args = ['--master-key-file', FIXTURE_KEY_FILE]) {
    const before = sha256(backup);
    const dataDir = join(scratch(), 'restored');
    const result = await keyway(['restore', '--backup', backup, '--data-dir', dataDir, ...args], env);
    expect(result.stderr).toMatch(message);
    expect(result.code).not.toBe(0);
    expect(existsSync(dataDir)).toBe(false);
    expect(sha256(backup)).toBe(before);
  }

  it('refuses the wrong master key, and no master key at all, writing nothing', async () => {
    const backup = await fixtureBackup();
    const wrong = join(scratch(), 'wrong.key');
    writeFileSync(wrong, randomBytes(32).toString('base64url'));
    await refused(backup, /^keyway: the signing keys in .* do not open with the master key given \(is it the broker's\?\): sealed under master key/, {}, [
      '--master-key-file',
      wrong,
    ]);
    await refused(backup, /do not open with the master key given/, { KEYWAY_MASTER_KEY: randomBytes(32).toString('base64') }, []);
    await refused(backup, /^keyway: no master key: set KEYWAY_MASTER_KEY/, {}, []);
  });

  it('refuses a corrupt backup: truncated, bytes flipped, or not a database at all', async () => {
    const truncated = await fixtureBackup();
    truncateSync(truncated, statSync(truncated).size - 4096 * 4);
    await refused(truncated, /^keyway: .* is (damaged \(SQLite integrity check|not a readable SQLite database)/);

    // A byte of a stored record changed: SQLite still reads the page, the audit chain does not hold.
    const flipped = await fixtureBackup();
    const bytes = readFileSync(flipped);
    const at = bytes.indexOf('"req-1"');
    expect(at).toBeGreaterThan(0);
    bytes[at + 5] = '9'.charCodeAt(0);
    writeFileSync(flipped, bytes);
    await refused(flipped, /^keyway: the audit log in .* does not verify \((edited|index_mismatch) at seq 1\)/);

    const text = join(scratch(), 'notes.txt');
    writeFileSync(text, 'not a database, but long enough to look like a file header of one. '.repeat(100));
    await refused(text, /^keyway: .* is not a readable SQLite database: file is not a database/);
  });

  it('refuses a backup a newer keyway wrote, naming both schema versions', async () => {
    const backup = await fixtureBackup();
    const db = openSqliteFile(backup);
    migrate(db);
    db.run('INSERT INTO keyway_schema (id, applied_at) VALUES (?, ?)', [SCHEMA_VERSION + 1, Date.now()]);
    db.exec('PRAGMA journal_mode = DELETE');
    db.close();
    await refused(backup, `schema version ${SCHEMA_VERSION + 1}, newer than the ${SCHEMA_VERSION} this keyway knows`);
  });

  // Whoever can write a backup, but not the master key, could plant the live policy set the restored broker would serve.
  describe('a backup holding a live policy set', () => {
    const pushed = [{ path: 'deploy.yaml', text: 'version: 1\n# what the policy repository pushed\n' }];
    const planted = [{ path: 'deploy.yaml', text: 'version: 1\n# an allow-all set planted in the backup\n' }];
    const attested = async (files: typeof pushed) =>
      (await SecretBox.fromMasterKeys(readMasterKeyFile(FIXTURE_KEY_FILE))).attest(livePolicyAttestationText(1, files), LIVE_POLICY_ATTESTATION_PURPOSE);
    /** The fixture's backup, migrated to `schema`, with `files` stored as the live set under `attestation`. */
    async function withLiveSet(files: typeof pushed, attestation: string | null, schema = SCHEMA_VERSION): Promise<string> {
      const backup = await fixtureBackup();
      const db = openSqliteFile(backup);
      migrate(db, schema);
      const columns =
        schema >= LIVE_POLICY_ATTESTATION_SCHEMA ? { names: ', attestation', values: ', ?', params: [attestation] } : { names: '', values: '', params: [] };
      db.run(`INSERT INTO live_policy_set (slot, version, source, switched_at, files${columns.names}) VALUES (1, 1, 'github push 1', 0, ?${columns.values})`, [
        JSON.stringify(files),
        ...columns.params,
      ]);
      db.exec('PRAGMA journal_mode = DELETE');
      db.close();
      return backup;
    }

    it('restores one the master key attested', async () => {
      const backup = await withLiveSet(pushed, await attested(pushed));
      const result = await keyway(['restore', '--backup', backup, '--data-dir', join(scratch(), 'restored'), '--master-key-file', FIXTURE_KEY_FILE]);
      expect(result).toMatchObject({ code: 0, stderr: `${unmacedNote(backup, SCHEMA_VERSION)}${RESTORE_NOTE}` });
    });

    it('refuses one whose attestation the master key did not make for it, or that has none, writing nothing', async () => {
      await refused(
        await withLiveSet(planted, await attested(pushed)),
        /^keyway: the live policy set version 1 is not vouched for by the master key: its attestation was not made by the master key for what the row holds: .* Nothing was restored/,
      );
      await refused(
        await withLiveSet(planted, null),
        /^keyway: the live policy set version 1 has no attestation .* could have planted it\. Nothing was restored/,
      );
    });

    it('restores one a keyway from before attestations stored, saying the broker will not serve it', async () => {
      const backup = await withLiveSet(pushed, null, LIVE_POLICY_ATTESTATION_SCHEMA - 1);
      const result = await keyway(['restore', '--backup', backup, '--data-dir', join(scratch(), 'restored'), '--master-key-file', FIXTURE_KEY_FILE]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/^note: the live policy set version 1 has no attestation .*; the broker will not serve it, the next push/);
    });
  });

  it('refuses a backup with a record appended to its tail after its last checkpoint, chained right but with no MAC of the master key', async () => {
    // The fixture as a broker of this keyway left it: migrated (its 5 records written before MACs), then backed up.
    const dataDir = fixtureDataDir();
    const db = openSqliteFile(join(dataDir, DATABASE_FILE));
    migrate(db);
    db.close();
    const backup = join(scratch(), 'keyway.backup');
    expect((await keyway(['backup', '--data-dir', dataDir, '--output', backup])).code).toBe(0);
    const forged = openSqliteFile(backup);
    expect(appendForgedRecord(forged)).toBe(6);
    forged.exec('PRAGMA journal_mode = DELETE');
    forged.close();
    await refused(
      backup,
      /^keyway: the audit log in .* holds a record the broker did not append: record 6 carries no MAC, though the broker has MACed every record after 5: the broker did not append it\. Nothing was restored\n$/,
    );
  });

  // Whoever can write a backup, but not the master key, could plant SQL the restored broker would run on every write.
  it.each([
    [
      'a trigger that forgets every single-use claim',
      'CREATE TRIGGER forget AFTER INSERT ON replay_claims BEGIN DELETE FROM replay_claims; END',
      'trigger forget',
    ],
    ['a view', 'CREATE VIEW recent AS SELECT seq FROM audit_events', 'view recent'],
    [
      'a unique index made plain (two current keys)',
      'DROP INDEX signing_keys_one_per_state; CREATE INDEX signing_keys_one_per_state ON signing_keys (state)',
      'index signing_keys_one_per_state (changed)',
    ],
  ])('refuses a backup whose schema keyway did not make: %s', async (_what, sql, named) => {
    const backup = await fixtureBackup();
    const db = openSqliteFile(backup);
    db.exec(sql);
    db.exec('PRAGMA journal_mode = DELETE');
    db.close();
    await refused(backup, new RegExp(`^keyway: .* holds schema objects keyway does not make: ${named.replace(/[()]/g, '\\$&')}[.;]`));
  });
});

describe('a backup of a broker under load', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  /** `npm start` on PORT=0, as an operator runs it; resolves with its URL once it listens. */
  async function startBroker(env: Environment): Promise<string> {
    return (await spawnBroker(env, (child) => children.push(child))).url;
  }

  it('restores to a log that verifies and holds every record acknowledged before the backup began', { timeout: 90_000 }, async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'backup-gh');
    const generic = freshIssuer(inject('testIssuerBase'), 'backup-oidc');
    const root = writeTree(Object.fromEntries(Object.entries(suitePolicies(github, generic)).map(([path, text]) => [`policies/${path}`, text])));
    const masterKey = randomBytes(32).toString('base64url');
    const url = await startBroker({
      KEYWAY_POLICIES: join(root, 'policies'),
      KEYWAY_DATA_DIR: join(root, 'data'),
      KEYWAY_ISSUER: BROKER_ISSUER,
      KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
      KEYWAY_MASTER_KEY: masterKey,
      KEYWAY_WATCH_POLICIES: '0',
    });
    // A bounded stream of exchanges: 4 workers, 240 in all, granted ones acknowledged with their audit event id.
    const granted: string[] = [];
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < 240) {
        sent += 1;
        const response = await fetch(`${url}/token`, {
          method: 'POST',
          body: exchangeForm(await github.sign(ciClaims(github.url, BROKER_ISSUER))),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        const body = (await response.json()) as { audit_event_id?: string };
        expect(response.status).toBe(200);
        if (body.audit_event_id !== undefined) granted.push(body.audit_event_id);
      }
    };
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    await expect.poll(() => granted.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(40);
    const acknowledged = [...granted];
    const backupFile = join(scratch(), 'keyway.backup');
    const backup = await keyway(['backup', '--data-dir', join(root, 'data'), '--output', backupFile]);
    const duringBackup = granted.length - acknowledged.length;
    await load;
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    // The broker served on while the backup ran (it did not pause it), and the stream was bounded.
    expect(duringBackup + acknowledged.length).toBeLessThanOrEqual(240);
    expect(granted).toHaveLength(240);

    const restored = join(scratch(), 'restored');
    const result = await keyway(['restore', '--backup', backupFile, '--data-dir', restored], { KEYWAY_MASTER_KEY: masterKey });
    expect(result.stderr).toBe(RESTORE_NOTE);
    expect(result.code).toBe(0);
    const verified = await keyway(['audit', 'verify', '--data-dir', restored], { KEYWAY_MASTER_KEY: masterKey });
    expect(verified).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: /) });
    const db = openSqliteFile(join(restored, DATABASE_FILE), { readonly: true });
    try {
      const ids = new Set(db.all<{ id: string }>('SELECT id FROM audit_events').map((row) => row.id));
      expect(acknowledged.filter((id) => !ids.has(id))).toEqual([]);
      expect(ids.size).toBeGreaterThanOrEqual(acknowledged.length);
    } finally {
      db.close();
    }
  });
  it('walks the disaster recovery runbook: lose the host, restore, change the master key, withdraw the keys of that time, and check the chain against kept checkpoints', {
    // The running broker takes the withdrawals from the data dir at its next reload of the key ring: up to a minute.
    timeout: 200_000,
  }, async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'runbook-gh');
    const root = writeTree(
      Object.fromEntries(
        Object.entries(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'runbook-oidc'))).map(([path, text]) => [`policies/${path}`, text]),
      ),
    );
    const settings = {
      KEYWAY_POLICIES: join(root, 'policies'),
      KEYWAY_ISSUER: BROKER_ISSUER,
      KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
      KEYWAY_AUDIT_CHECKPOINT_SECONDS: '1',
    };
    const oldKey = randomBytes(32).toString('base64url');
    const exchange = async (url: string) => {
      const response = await fetch(`${url}/token`, {
        method: 'POST',
        body: exchangeForm(await github.sign(ciClaims(github.url, BROKER_ISSUER))),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(response.status).toBe(200);
      return (await response.json()) as { access_token: string };
    };
    /** What a witness keeps: the answers of the broker's public checkpoints API, appended to a file as `curl -s … >> FILE` does. */
    const keptFile = join(scratch(), 'kept-checkpoints.json');
    const witness = async (url: string, seq: number) => {
      let kept: { seq: number; hash: string; time: string; jws: string }[] = [];
      let answer = '';
      await expect
        .poll(
          async () => {
            answer = await (await fetch(`${url}/v1/audit/checkpoints`)).text();
            kept = (JSON.parse(answer) as { checkpoints: typeof kept }).checkpoints;
            return kept.at(-1)?.seq ?? 0;
          },
          { timeout: 15_000 },
        )
        .toBeGreaterThanOrEqual(seq);
      // Kept twice over, as a witness fetching on a schedule would: the same checkpoints again, one answer after the other.
      writeFileSync(keptFile, `${answer}${answer}\n`);
      return kept;
    };

    // The old host: serves, is backed up, serves on, and its witness keeps the checkpoints.
    const oldHost = await startBroker({ ...settings, KEYWAY_DATA_DIR: join(root, 'old'), KEYWAY_MASTER_KEY: oldKey });
    for (let n = 0; n < 5; n += 1) await exchange(oldHost);
    const issuedBefore = await exchange(oldHost);
    // The witness polls: it has kept a checkpoint of these 6 records before the backup is taken.
    const keptBefore = await witness(oldHost, 6);
    const backupFile = join(scratch(), 'keyway.backup');
    expect((await keyway(['backup', '--data-dir', join(root, 'old'), '--output', backupFile])).code).toBe(0);
    for (let n = 0; n < 4; n += 1) await exchange(oldHost);
    const keptAfter = await witness(oldHost, 10);
    const kept = [...keptBefore, ...keptAfter.filter((checkpoint) => !keptBefore.some((before) => before.seq === checkpoint.seq))];
    // Lose the host.
    for (const child of children.splice(0)) child.kill('SIGKILL');

    // 1. Restore on the new host with the master key from the secret store.
    const dataDir = join(scratch(), 'keyway');
    const restored = await keyway(['restore', '--backup', backupFile, '--data-dir', dataDir, '--json'], { KEYWAY_MASTER_KEY: oldKey });
    expect(restored.code, restored.stderr).toBe(0);
    // With --json too: standard output is the JSON alone, the note goes to standard error.
    expect(restored.stderr).toBe(RESTORE_NOTE);
    const head = (JSON.parse(restored.stdout) as { head_seq: number }).head_seq;
    expect(head).toBeGreaterThanOrEqual(6);

    // 2. Before it serves, the restored log agrees with every kept checkpoint up to its head; the kept ones beyond it name the records lost.
    expect(kept.filter((checkpoint) => checkpoint.seq <= head).length).toBeGreaterThan(0);
    // The witness's newest checkpoint covers all 10 records the old host wrote: the 10 − head after the backup were lost.
    expect(Math.max(...kept.map((checkpoint) => checkpoint.seq))).toBe(10);
    const checked = await keyway(['audit', 'verify', '--data-dir', dataDir, '--checkpoints', keptFile], { KEYWAY_MASTER_KEY: oldKey });
    expect(checked).toMatchObject({
      code: 1,
      stdout: `INCOMPLETE (records_missing) at seq ${head + 1}: the log ends at ${head}; a kept checkpoint covers up to 10: ${10 - head} records are missing\n`,
    });

    // 3 and 4. The old host may be compromised: the broker starts with a new master key (the old one as previous).
    const newKey = randomBytes(32).toString('base64url');
    const newHost = await startBroker({ ...settings, KEYWAY_DATA_DIR: dataDir, KEYWAY_MASTER_KEY: newKey, KEYWAY_MASTER_KEY_PREVIOUS: oldKey });
    const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string }).kid;
    const published = async () => ((await (await fetch(`${newHost}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
    // A token the old host issued before the backup verifies on the new host: the restored JWKS holds its key.
    const kid = kidOf(issuedBefore.access_token);
    expect(await published()).toContain(kid);
    // Its signing keys of that time are withdrawn: each ring's next key first, then its current key, then any retired one.
    type Listed = { kid: string; alg: string; state: string; withdrawn_at?: string };
    const listKeys = async () =>
      (JSON.parse((await keyway(['keys', 'list', '--json', '--data-dir', dataDir], { KEYWAY_MASTER_KEY: newKey })).stdout) as { keys: Listed[] }).keys;
    const order = ['next', 'current', 'retired'];
    const leaked = (await listKeys()).filter((key) => order.includes(key.state)).sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state));
    expect(leaked.map((key) => key.kid)).toContain(kid);
    for (const key of leaked) {
      const withdrawn = await keyway(['keys', 'withdraw', '--data-dir', dataDir, '--', key.kid], { KEYWAY_MASTER_KEY: newKey });
      expect(withdrawn.code, withdrawn.stderr).toBe(0);
    }
    const keysNow = await listKeys();
    for (const key of leaked) expect(keysNow.find((each) => each.kid === key.kid)).toMatchObject({ state: 'removed', withdrawn_at: expect.any(String) });
    const fresh = keysNow.filter((key) => key.state === 'current');
    expect(fresh.map((key) => key.alg).sort()).toEqual(['ES256', 'RS256']);
    // The broker takes them at its next reload of the ring, within a minute: the old keys leave its JWKS, fresh ones sign.
    const leakedKids = leaked.map((key) => key.kid);
    await expect.poll(async () => (await published()).filter((each) => leakedKids.includes(each)), { timeout: 80_000, interval: 1000 }).toEqual([]);
    expect(fresh.map((key) => key.kid)).toContain(kidOf((await exchange(newHost)).access_token));

    // The log verifies with the new master key too.
    const verified = await keyway(['audit', 'verify', '--data-dir', dataDir], { KEYWAY_MASTER_KEY: newKey });
    expect(verified).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: /) });
    // After the restart on the restored log, the chain goes on from its head: the withdrawals' records and the new host's follow it.
    // The checkpoints the broker signed with the withdrawn current key until it reloaded its ring are within the 75 s allowed.
    const written = head + leaked.length + 1;
    expect(verified.stdout).toMatch(new RegExp(`^intact: ${written} records \\(seq 1…${written}\\)`));
    const withdrawals = await keyway(['audit', 'query', '--reason', 'signing_key_withdrawn', '--json', '--data-dir', dataDir], {
      KEYWAY_MASTER_KEY: newKey,
    });
    expect((JSON.parse(withdrawals.stdout) as { events: { detail?: string }[] }).events.map((event) => event.detail?.split(' (')[0]).sort()).toEqual(
      leakedKids.map((each) => `withdrew signing key ${each}`).sort(),
    );

    // Once the new host's records reach the seqs the lost ones had, the kept checkpoints beyond the restored head no longer match:
    // that log is not the one the old host signed there.
    for (let n = head + 1; n < 10; n += 1) await exchange(newHost);
    const diverged = await keyway(['audit', 'verify', '--data-dir', dataDir, '--checkpoints', keptFile], { KEYWAY_MASTER_KEY: newKey });
    const firstLost = Math.min(...kept.filter((checkpoint) => checkpoint.seq > head).map((checkpoint) => checkpoint.seq));
    expect(diverged).toMatchObject({ code: 1, stdout: expect.stringMatching(new RegExp(`^TAMPERED \\(kept_checkpoint_mismatch\\) at seq ${firstLost}: `)) });
    // A kept checkpoint the broker's keys did not sign counts for nothing.
    const forged = join(scratch(), 'forged.json');
    const last = kept.at(-1)!;
    const broken = { ...last, jws: `${last.jws.slice(0, -4)}${last.jws.endsWith('AAAA') ? 'BBBB' : 'AAAA'}` };
    writeFileSync(forged, JSON.stringify({ checkpoints: [broken] }));
    const invalid = await keyway(['audit', 'verify', '--data-dir', dataDir, '--checkpoints', forged], { KEYWAY_MASTER_KEY: newKey });
    expect(invalid).toMatchObject({
      code: 1,
      stdout: expect.stringMatching(/^TAMPERED \(kept_checkpoint_invalid\) at seq 10: the kept checkpoint for seq 10 is not signed/),
    });
  });
});
