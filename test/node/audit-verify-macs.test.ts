import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { signRootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { auditStatementSigner, checkpointSigner } from '../../src/core/audit/sign-checkpoint.ts';
import { silentLogger } from '../../src/core/log.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { generateMasterKey, readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { MASTER_KEY_FILE } from '../../src/storage/master-key-file.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { shardedExportText } from '../../src/storage/sharded-state-export.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { dumpDatabase } from '../../src/storage/state-dump.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { runKeyway as cli, testConfig, writeTree } from './node-harness.ts';

const ISSUER = 'https://keyway.example.com';

/** The tests run the CLI as several processes, one after another: on a loaded machine each start takes seconds. */
const CLI_RUNS_TIMEOUT_MS = 60_000;

describe('keyway audit verify --macs: the records held to the MACs the broker wrote them with', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  /** A Node broker's data directory after `count` exchanges, closed (which signs its head), and the keys an auditor saved. */
  async function brokerLog(count: number) {
    const github = freshIssuer(inject('testIssuerBase'), 'macs-gh');
    const policies = suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'macs-oidc'));
    const root = writeTree(Object.fromEntries(Object.entries(policies).map(([path, text]) => [`policies/${path}`, text])));
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    running.push(broker);
    for (let index = 0; index < count; index += 1) {
      const form = exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, index % 2 === 0 ? {} : { ref: 'refs/heads/x' })));
      await fetch(`${broker.url}/token`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    }
    const pinned = join(root, 'audit-keys.json');
    writeFileSync(pinned, await (await fetch(`${broker.url}/v1/audit/keys`)).text());
    await running.splice(0)[0]?.close();
    const dataDir = join(root, 'data');
    return {
      pinned,
      masterKeyFile: join(dataDir, MASTER_KEY_FILE),
      /** A copy of the data directory, its master key file with it unless `masterKey` is false, with `change` made to its database. */
      copy(change: (db: SqliteFile) => void = () => {}, { masterKey = true } = {}): string {
        const copy = mkdtempSync(join(tmpdir(), 'keyway-macs-'));
        copyFileSync(join(dataDir, DATABASE_FILE), join(copy, DATABASE_FILE));
        if (masterKey) copyFileSync(join(dataDir, MASTER_KEY_FILE), join(copy, MASTER_KEY_FILE));
        const db = openSqliteFile(join(copy, DATABASE_FILE));
        change(db);
        db.close();
        return copy;
      },
    };
  }

  const macOf = (db: SqliteFile, seq: number) => db.all<{ mac: string }>('SELECT mac FROM audit_events WHERE seq = ?', [seq])[0]?.mac ?? '';
  const idOf = (db: SqliteFile, seq: number) => db.all<{ id: string }>('SELECT id FROM audit_events WHERE seq = ?', [seq])[0]?.id ?? '';

  it(
    "passes a Node broker's log as it wrote it, and names a record whose MAC was altered or taken out (exit 1)",
    async () => {
      const log = await brokerLog(4);
      const verify = (dir: string, ...extra: string[]) => cli(['audit', 'verify', '--data-dir', dir, '--macs', ...extra]);

      const intact = await verify(log.copy());
      expect(intact.stderr).toBe('');
      expect(intact.stdout).toMatch(/^intact: 4 records \(seq 1…4\), \d+ signed checkpoints; head [0-9a-f]{64}\n/);
      expect(intact.stdout).toContain('MACs: 4 records carry a valid MAC; every record after seq 0 must carry one (as the newest checkpoint signs)\n');
      expect(intact.code).toBe(0);
      expect(JSON.parse((await verify(log.copy(), '--json')).stdout)).toMatchObject({ ok: true, macs: { valid: 4, without: 0, after: 0, signed: true } });

      // Record 2's MAC swapped for record 3's: a MAC the master key made, but not for record 2.
      let id = '';
      const altered = await verify(
        log.copy((db) => {
          id = idOf(db, 2);
          db.run('UPDATE audit_events SET mac = ? WHERE seq = 2', [macOf(db, 3)]);
        }),
      );
      expect(altered.stdout).toBe(
        `TAMPERED (mac_invalid) at seq 2: record 2 (${id}) carries a MAC the master key did not make: the broker did not append it\n`,
      );
      expect(altered.code).toBe(1);

      const removed = await verify(
        log.copy((db) => db.run('UPDATE audit_events SET mac = NULL WHERE seq = 3')),
        '--json',
      );
      expect(JSON.parse(removed.stdout)).toMatchObject({
        ok: false,
        problem: {
          kind: 'mac_missing',
          seq: 3,
          message: expect.stringMatching(/^record 3 \(.*\) carries no MAC, though the broker has MACed every record after 0: the broker did not append it$/),
        },
      });
      expect(removed.code).toBe(1);

      // Without --macs the chain and the checkpoints hold: only the MAC tells.
      expect(await cli(['audit', 'verify', '--data-dir', log.copy((db) => db.run('UPDATE audit_events SET mac = NULL WHERE seq = 3'))])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^intact: 4 records/),
      });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'holds the records to where MACs start as a kept checkpoint signs it, not to a store whose checkpoints were deleted and start moved',
    async () => {
      const log = await brokerLog(2);
      // The checkpoints an auditor saved, as GET /v1/audit/checkpoints answered them: the head's, signed at close, says MACs start after 0.
      const keptFile = join(mkdtempSync(join(tmpdir(), 'keyway-macs-kept-')), 'checkpoints.json');
      const saved = openSqliteFile(join(log.copy(), DATABASE_FILE));
      writeFileSync(keptFile, JSON.stringify({ checkpoints: await new SqliteAuditStore(saved).checkpoints(0, 100) }));
      saved.close();
      // Whoever writes the store: the checkpoints that sign where MACs start deleted, the store's own start raised past
      // the records, every MAC taken out, and two records appended by a store without the master key.
      const forged = log.copy((db) => {
        db.run('DELETE FROM audit_checkpoints');
        db.run('UPDATE audit_mac_start SET macs_after = 1000');
        db.run('UPDATE audit_events SET mac = NULL');
      });
      const db = openSqliteFile(join(forged, DATABASE_FILE));
      const writer = new SqliteAuditStore(db);
      for (let count = 0; count < 2; count += 1) await writer.append(auditEvent());
      db.close();

      const verified = await cli(['audit', 'verify', '--data-dir', forged, '--macs', '--checkpoints', keptFile, '--json']);
      expect(JSON.parse(verified.stdout)).toMatchObject({
        ok: false,
        problem: { kind: 'mac_missing', seq: 1, message: expect.stringContaining('though the broker has MACed every record after 0') },
      });
      expect(verified.code).toBe(1);
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'reads the master key as the broker does, or from --master-key-file; a wrong one fails, and the key is never printed',
    async () => {
      const log = await brokerLog(2);
      const bare = log.copy(() => {}, { masterKey: false });
      const keyText = readFileSync(log.masterKeyFile, 'utf8').trim();

      expect(await cli(['audit', 'verify', '--data-dir', bare, '--macs', '--keys', log.pinned])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("--macs checks the records' MACs with the master key: set KEYWAY_MASTER_KEY as the broker has it"),
      });
      const fromFile = await cli(['audit', 'verify', '--data-dir', bare, '--macs', '--master-key-file', log.masterKeyFile]);
      expect(fromFile).toMatchObject({ code: 0, stdout: expect.stringContaining('MACs: 2 records carry a valid MAC') });
      const fromEnv = await cli(['audit', 'verify', '--data-dir', bare, '--macs'], { KEYWAY_MASTER_KEY: keyText });
      expect(fromEnv).toMatchObject({ code: 0, stdout: expect.stringContaining('MACs: 2 records carry a valid MAC') });

      // Another master key: it attests none of the broker's keys (pinned here), and made none of its MACs.
      const wrong = join(mkdtempSync(join(tmpdir(), 'keyway-macs-key-')), 'other.key');
      writeFileSync(wrong, `${generateMasterKey()}\n`, { mode: 0o600 });
      const wrongKey = await cli(['audit', 'verify', '--data-dir', bare, '--macs', '--master-key-file', wrong, '--keys', log.pinned]);
      expect(wrongKey.stdout).toMatch(
        /^UNVERIFIED \(mac_key_unknown\) at seq 1: record 1 \(.*\) carries a MAC under master key ".*", which is not configured \(KEYWAY_MASTER_KEY, KEYWAY_MASTER_KEY_PREVIOUS\)\n$/,
      );
      expect(wrongKey.code).toBe(1);
      const wrongEnv = await cli(['audit', 'verify', '--data-dir', bare, '--macs', '--keys', log.pinned, '--json'], {
        KEYWAY_MASTER_KEY: readFileSync(wrong, 'utf8').trim(),
      });
      expect(JSON.parse(wrongEnv.stdout)).toMatchObject({ ok: false, problem: { kind: 'mac_key_unknown', seq: 1 } });
      for (const run of [fromFile, fromEnv, wrongKey, wrongEnv]) expect(`${run.stdout}${run.stderr}`).not.toContain(keyText);

      // The API's export carries no MACs: refused before anything is fetched, naming the sources that carry them.
      const remote = await cli(['audit', 'verify', '--url', 'http://127.0.0.1:9', '--token', 'unused', '--macs']);
      expect(remote).toMatchObject({ code: 2, stderr: expect.stringContaining("the broker's export (GET /v1/audit/export) does not carry the records' MACs") });
      expect(remote.stderr).toContain('save its GET /v1/backup (a token with scope backup:read) and give it with --backup FILE');
      expect(remote.stderr).toContain('a Node broker: its data directory (--data-dir), on the host or a backup restored with keyway restore');
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  /**
   * A Workers export (GET /v1/backup) of two shards of three records each, as the Workers state and each AuditShardState
   * keep them, in real SQLite files: the keys sealed, each chain's records MACed under its name, its head signed with
   * `macs_after` 0, and a root checkpoint over both heads signing where MACs start in each. `tamper` is what whoever
   * writes the shards does to them after that round, before the export is taken. With `third`, an empty third shard comes
   * after the two: `named` by the root checkpoint at seq 0, as a round names a shard that holds no record yet (its head,
   * and no start of its own), or `unnamed`, added since the root was signed.
   */
  async function workersExport(tamper: (shards: readonly SqliteFile[]) => Promise<void> = async () => {}, third?: 'named' | 'unnamed') {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-macs-export-'));
    const masterKey = generateMasterKey();
    const master = readMasterKeys({ KEYWAY_MASTER_KEY: masterKey }) as MasterKeys;
    const open = (name: string) => {
      const db = openSqliteFile(join(dir, name));
      migrate(db);
      return db;
    };
    const state = open('state.db');
    const keys = new SqliteKeyStore(state, await SecretBox.fromMasterKeys(master));
    await keys.initializeKeys(await generateSigningKey(Date.now()));
    const ring = await KeyRing.from(await keys.listKeys());
    const shards = [open('shard-0.db'), open('shard-1.db')];
    const heads = {};
    for (const [index, db] of shards.entries()) {
      const store = new SqliteAuditStore(db, { macs: new RecordMacs(recordMacKeys(master), { chain: String(index) }) });
      for (let count = 0; count < 3; count += 1) await store.append(auditEvent());
      const head = await store.head();
      await store.addCheckpoint(await checkpointSigner(ISSUER, () => ring, Date.now)(head, 'head', 0));
      Object.assign(heads, { [String(index)]: head });
    }
    if (third !== undefined) shards.push(open('shard-2.db'));
    if (third === 'named') Object.assign(heads, { '2': await new SqliteAuditStore(shards[2] as SqliteFile).head() });
    const root = await signRootCheckpoint(
      auditStatementSigner(ISSUER, () => ring, Date.now),
      heads,
      { '0': 0, '1': 0 },
    );
    await tamper(shards);
    const file = join(dir, 'keyway-state.json');
    writeFileSync(
      file,
      shardedExportText(
        JSON.stringify(dumpDatabase(state, Date.now())),
        shards.map((db) => JSON.stringify(dumpDatabase(db, Date.now()))),
        [root],
      ),
    );
    for (const db of [state, ...shards]) db.close();
    return { dir, file, env: { KEYWAY_MASTER_KEY: masterKey } };
  }

  it(
    "holds each shard of a Workers export to MACs bound to its chain: a shard's records moved into another fail there (exit 1)",
    async () => {
      const { dir, file, env } = await workersExport();

      const intact = await cli(['audit', 'verify', '--backup', file, '--macs'], env);
      expect(intact.stdout).toContain(
        'shard 1: intact: 3 records (seq 1…3), 1 signed checkpoints\n  MACs: 3 records carry a valid MAC; every record after seq 0 must carry one (as the newest checkpoint signs)\n',
      );
      expect(intact.stdout).toMatch(/intact: 2 chains\n$/);
      expect(intact.code).toBe(0);

      type Export = { shards: { tables: Record<string, unknown[]> }[] };
      const moved = JSON.parse(readFileSync(file, 'utf8')) as Export;
      const [zero, one] = moved.shards;
      if (zero === undefined || one === undefined) throw new Error('the export holds two shards');
      zero.tables['audit_events'] = one.tables['audit_events'] ?? [];
      zero.tables['audit_checkpoints'] = [];
      writeFileSync(join(dir, 'moved.json'), JSON.stringify(moved));
      const refused = await cli(['audit', 'verify', '--backup', join(dir, 'moved.json'), '--macs', '--json'], env);
      expect(JSON.parse(refused.stdout)).toMatchObject({
        ok: false,
        problem: { kind: 'mac_invalid', shard: '0', seq: 1, message: expect.stringContaining('carries a MAC the master key did not make') },
      });
      expect(refused.code).toBe(1);
      const text = await cli(['audit', 'verify', '--backup', join(dir, 'moved.json'), '--macs'], env);
      expect(text.stdout).toMatch(/^TAMPERED \(mac_invalid\) in shard 0 at seq 1: record 1 \(.*\) carries a MAC the master key did not make/m);

      // A shard's record with its MAC taken out, in the export's own tables.
      const stripped = JSON.parse(readFileSync(file, 'utf8')) as Export;
      const record = stripped.shards[1]?.tables['audit_events']?.[1] as Record<string, unknown> | undefined;
      if (record === undefined) throw new Error('shard 1 holds a second record');
      record['mac'] = null;
      writeFileSync(join(dir, 'stripped.json'), JSON.stringify(stripped));
      const missing = await cli(['audit', 'verify', '--backup', join(dir, 'stripped.json'), '--macs', '--json'], env);
      expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, problem: { kind: 'mac_missing', shard: '1', seq: 2 } });
      expect(missing.code).toBe(1);
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'holds a shard to where MACs start as the root checkpoint signs it, not to a shard whose checkpoints were deleted and start moved',
    async () => {
      // Whoever writes shard 0's storage after the round: its checkpoints deleted, its own start raised past its records,
      // every MAC taken out, and two records appended without the master key. Its chain still passes through the root's head.
      const { file, env } = await workersExport(async ([zero]) => {
        if (zero === undefined) throw new Error('the export holds two shards');
        zero.run('DELETE FROM audit_checkpoints');
        zero.run('UPDATE audit_mac_start SET macs_after = 1000');
        zero.run('UPDATE audit_events SET mac = NULL');
        const writer = new SqliteAuditStore(zero);
        for (let count = 0; count < 2; count += 1) await writer.append(auditEvent());
      });

      const verified = await cli(['audit', 'verify', '--backup', file, '--macs', '--json'], env);
      expect(JSON.parse(verified.stdout)).toMatchObject({
        ok: false,
        problem: { kind: 'mac_missing', shard: '0', seq: 1, message: expect.stringContaining('though the broker has MACed every record after 0') },
      });
      expect(verified.code).toBe(1);
      // Without --macs the chain and the root checkpoint hold: only the MACs tell.
      expect(await cli(['audit', 'verify', '--backup', file], env)).toMatchObject({ code: 0, stdout: expect.stringMatching(/intact: 2 chains\n$/) });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it.each([
    ['does not name', 'unnamed'],
    ['names empty', 'named'],
  ] as const)(
    'holds a shard that the root checkpoint %s to MACs from its first record: records written into an export without the master key, its stored start raised past them, fail',
    async (_, third) => {
      // Whoever writes the export writes two records into the third shard, dated after the root, chained right without the
      // master key, and raises its stored start so that they read as written before keyway made MACs.
      const { file, env } = await workersExport(async ([, , added]) => {
        if (added === undefined) throw new Error('the export holds a third shard');
        added.run('UPDATE audit_mac_start SET macs_after = 1000');
        const writer = new SqliteAuditStore(added);
        for (let count = 0; count < 2; count += 1) await writer.append(auditEvent({ time: new Date(Date.now() + 5_000).toISOString() }));
      }, third);

      const verified = await cli(['audit', 'verify', '--backup', file, '--macs', '--json'], env);
      expect(JSON.parse(verified.stdout)).toMatchObject({
        ok: false,
        problem: { kind: 'mac_missing', shard: '2', seq: 1, message: expect.stringContaining('though the broker has MACed every record after 0') },
      });
      expect(verified.code).toBe(1);
      // Without --macs the chain holds, and a shard empty or added since the newest root may hold records dated after it: only the MACs tell.
      expect(await cli(['audit', 'verify', '--backup', file], env)).toMatchObject({ code: 0, stdout: expect.stringMatching(/intact: 3 chains\n$/) });
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});
