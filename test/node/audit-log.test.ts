import type { Inventory } from '../../src/core/audit/inventory.ts';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AUDIT_INDEX_COLUMNS } from '../../src/core/audit/audit-index.ts';
import { canonicalEvent, chainHash, chainHashOfCanonical, GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';
import { readAuditSettings } from '../../src/core/audit/audit-settings.ts';
import { MemoryRateLimiter } from '../../src/core/limits/memory-rate-limiter.ts';
import { createBroker } from '../../src/runtimes/create-broker.ts';
import { jsonLogger, silentLogger } from '../../src/core/log.ts';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { checkpointSigner, checkpointVerifier } from '../../src/core/audit/sign-checkpoint.ts';
import { PolicySet } from '../../src/core/policy/policy-set.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { AUDIT_USAGE_REBUILD, refreshUsage, usageMismatch } from '../../src/storage/sqlite-audit-usage.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { MASTER_KEY_FILE, readMasterKeyFile } from '../../src/storage/master-key-file.ts';
import { maintainAuditLog } from '../../src/core/audit/maintain-audit-log.ts';
import type { SqlValue } from '../../src/storage/sql-database.ts';
import { SqliteAlertStore } from '../../src/storage/sqlite-alert-store.ts';
import { SqliteReplayGuard } from '../../src/storage/sqlite-replay-guard.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { auditorPolicies, auditorToken } from '../suites/audit-api-suite.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import { operatedBroker } from './operated-broker.ts';
import { BROKER_ISSUER, testConfig, writeTree, runKeyway } from './node-harness.ts';
import { revocationList } from '../../src/core/revocation/revocation-list.ts';
import { examinationRecord } from '../../src/core/revocation/examine-token.ts';
import { TEST_MAC_KEYS } from '../support/record-mac-keys.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';

const cli = runKeyway;

/** The tests that run the CLI as a dozen processes, one after another: on a loaded machine each start takes seconds. */
const CLI_RUNS_TIMEOUT_MS = 60_000;

/** A migrated SQLite file under a temporary directory named by `prefix`, its store MACing records, and a key ring to sign and verify checkpoints. */
async function macedLog(prefix: string) {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), prefix)), DATABASE_FILE));
  migrate(db);
  const ring = await KeyRing.from([await generateSigningKey(Date.now())]);
  return {
    db,
    store: new SqliteAuditStore(db, { macs: new RecordMacs(TEST_MAC_KEYS) }),
    sign: checkpointSigner(BROKER_ISSUER, () => ring, Date.now),
    verify: checkpointVerifier(() => ring),
  };
}

describe('the audit log in a real database file', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  function setup() {
    const github = freshIssuer(inject('testIssuerBase'), 'log-gh');
    const people = freshIssuer(inject('testIssuerBase'), 'log-people');
    const policies = { ...suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'log-oidc')), ...auditorPolicies(people, BROKER_ISSUER) };
    const root = writeTree(Object.fromEntries(Object.entries(policies).map(([path, text]) => [`policies/${path}`, text])));
    return { root, github, people, dataDir: join(root, 'data') };
  }

  async function start(root: string): Promise<NodeBroker> {
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    running.push(broker);
    return broker;
  }

  const exchange = async (broker: NodeBroker, form: URLSearchParams) => {
    const response = await fetch(`${broker.url}/token`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  /** A closed log of `count` exchanges with a checkpoint of its head, and a way to tamper with copies of it. */
  async function closedLog(count: number) {
    const { root, github, dataDir } = setup();
    const broker = await start(root);
    for (let index = 0; index < count; index += 1) {
      await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, index % 2 === 0 ? {} : { ref: 'refs/heads/x' }))));
    }
    // What an auditor saves while the broker runs, to pin its keys later.
    const pinned = join(root, 'audit-keys.json');
    writeFileSync(pinned, await (await fetch(`${broker.url}/v1/audit/keys`)).text());
    await running.splice(0)[0]?.close();
    return {
      issuer: broker.config.issuer,
      pinned,
      /** A copy of the data directory (the database, and the master key file unless `masterKey` is false) with `change` made to it. */
      tampered(change: (db: SqliteFile) => void, { masterKey = true } = {}): string {
        const copy = mkdtempSync(join(tmpdir(), 'keyway-tampered-'));
        copyFileSync(join(dataDir, DATABASE_FILE), join(copy, DATABASE_FILE));
        if (masterKey) copyFileSync(join(dataDir, MASTER_KEY_FILE), join(copy, MASTER_KEY_FILE));
        const db = openSqliteFile(join(copy, DATABASE_FILE));
        change(db);
        db.close();
        return copy;
      },
    };
  }

  const event = (db: SqliteFile, seq: number) =>
    JSON.parse(db.all<{ event: string }>('SELECT event FROM audit_events WHERE seq = ?', [seq])[0]?.event ?? 'null') as AuditEvent;

  /** Edits record 3's subject and re-hashes every record from it to the head (`last`), the index to match; returns the new head hash. */
  function rewrite(db: SqliteFile, last: number): string {
    let prev = db.all<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = 2')[0]?.hash as string;
    for (let seq = 3; seq <= last; seq += 1) {
      const changed = seq === 3 ? { ...event(db, 3), subject: 'repo:someone/else' } : event(db, seq);
      const hash = chainHash(prev, changed);
      db.run('UPDATE audit_events SET event = ?, subject = ?, prev_hash = ?, hash = ? WHERE seq = ?', [
        JSON.stringify(changed),
        changed.subject ?? null,
        prev,
        hash,
        seq,
      ]);
      prev = hash;
    }
    return prev;
  }

  it(
    'verifies an intact log, and names the first edited, deleted, re-ordered or cut-off record',
    async () => {
      const log = await closedLog(6);
      const verify = (dir: string) => cli(['audit', 'verify', '--data-dir', dir]);

      const intact = await verify(log.tampered(() => {}));
      expect(intact.code).toBe(0);
      expect(intact.stdout).toMatch(/^intact: 6 records \(seq 1…6\), 1 signed checkpoints; head [0-9a-f]{64}\n$/);

      const edited = await verify(
        log.tampered((db) => db.run('UPDATE audit_events SET event = ? WHERE seq = 3', [JSON.stringify({ ...event(db, 3), subject: 'repo:someone/else' })])),
      );
      expect(edited.code).toBe(1);
      expect(edited.stdout).toMatch(/^TAMPERED \(edited\) at seq 3: record 3 \(\w+\) was edited/);

      const deleted = await verify(log.tampered((db) => db.run('DELETE FROM audit_events WHERE seq = 3')));
      expect(deleted.code).toBe(1);
      expect(deleted.stdout).toMatch(/^TAMPERED \(deleted\) at seq 4: records 3…3 were deleted/);

      const swapped = await verify(
        log.tampered((db) => {
          db.run('UPDATE audit_events SET seq = -1 WHERE seq = 3');
          db.run('UPDATE audit_events SET seq = 3 WHERE seq = 4');
          db.run('UPDATE audit_events SET seq = 4 WHERE seq = -1');
        }),
      );
      expect(swapped.code).toBe(1);
      expect(swapped.stdout).toMatch(/^TAMPERED \(reordered\) at seq 3: record 3 \(\w+\) is out of order/);

      const cut = await verify(log.tampered((db) => db.run('DELETE FROM audit_events WHERE seq >= 5')));
      expect(cut.code).toBe(1);
      expect(cut.stdout).toMatch(/^TAMPERED \(truncated\) at seq 5: records after seq 4 were deleted: a checkpoint signed at .* covers seq 6/);

      // A careful forger re-hashes every record from the edit to the head (and edits the index to match): the signed checkpoint still tells.
      const rehashed = await verify(log.tampered((db) => void rewrite(db, 6)));
      expect(rehashed.code).toBe(1);
      expect(rehashed.stdout).toMatch(/^TAMPERED \(checkpoint_mismatch\) at seq 6: .* the log was rewritten after it/);

      const forged = await cli(['audit', 'verify', '--json', '--data-dir', log.tampered((db) => db.run("UPDATE audit_checkpoints SET jws = jws || 'x'"))]);
      expect(forged.code).toBe(1);
      expect(JSON.parse(forged.stdout)).toMatchObject({ ok: false, problem: { kind: 'checkpoint_invalid', seq: 6 } });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'holds the usage roll-up the inventory reads to the records: an edited, added or dated-back row fails verify (derived_mismatch)',
    async () => {
      const log = await closedLog(4);
      const verify = (dir: string) => cli(['audit', 'verify', '--data-dir', dir]);
      // Rolled up as the broker does when the inventory is asked for, then changed in the copy.
      const rolled = (change: (db: SqliteFile) => void) =>
        log.tampered((db) => {
          refreshUsage(db);
          expect(db.all('SELECT * FROM audit_usage').length).toBeGreaterThan(0);
          change(db);
        });
      expect((await verify(rolled(() => {}))).stdout).toMatch(/^intact: 4 records/);
      // The log's first day is read from the records (its rows are not held); a day after it, or before it, is.
      const columns =
        'grp, issuer, tenant, repository, subject, policy_id, decision, reason, scopes, audiences, github_permissions, github_repositories, count, first, last';
      for (const [edit, what] of [
        [`INSERT INTO audit_usage SELECT day + 1, ${columns} FROM audit_usage LIMIT 1`, /of \d{4}-\d\d-\d\d differs from the records for \[/],
        [`INSERT INTO audit_usage SELECT day - 400, ${columns} FROM audit_usage LIMIT 1`, /holds day \d{4}-\d\d-\d\d, before the log's first record/],
      ] as const) {
        const edited = await verify(rolled((db) => db.run(edit)));
        expect(edited.code, edit).toBe(1);
        expect(edited.stdout, edit).toMatch(/^TAMPERED \(derived_mismatch\): the usage roll-up \(the inventory\) /);
        expect(edited.stdout, edit).toMatch(what);
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it("finds every edit of the roll-up past the log's first day, and the inventory reads that first day from the records", async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-rollup-')), DATABASE_FILE));
    migrate(db);
    const store = new SqliteAuditStore(db);
    const now = Date.now();
    const granted = (days: number, repository: string) =>
      auditEvent({
        time: new Date(now - days * 86_400_000).toISOString(),
        decision: 'granted',
        reason: 'granted',
        issuer: 'https://ci.example',
        subject: `repo:${repository}`,
        claims: { repository, environment: 'production' },
        policy: { granted_by: 'deploy', candidates: ['deploy'], matched: ['deploy'], denied_by: [], audit_mode: [] },
      });
    for (const [days, repository] of [
      [3, 'acme/api'],
      [2, 'acme/api'],
      [2, 'acme/web'],
      [1, 'acme/api'],
    ] as const)
      await store.append(granted(days, repository));
    refreshUsage(db);
    expect(usageMismatch(db)).toBeUndefined();
    const window = { since: now - 5 * 86_400_000, until: now };
    const grantsOf = async () =>
      Object.fromEntries(
        Object.entries(Object.groupBy(await store.usage(window), (row) => row.repository ?? '')).map(([name, rows]) => [
          name,
          (rows ?? []).reduce((sum, row) => sum + row.count, 0),
        ]),
      );
    expect(await grantsOf()).toEqual({ 'acme/api': 3, 'acme/web': 1 });
    const twoDaysAgo = Math.floor((now - 2 * 86_400_000) / 86_400_000);
    for (const [edit, what] of [
      [
        `UPDATE audit_usage SET repository = 'acme/other', grp = json_array(issuer, tenant, 'acme/other', subject, policy_id, decision, reason, scopes, audiences, github_permissions, github_repositories) WHERE day = ${twoDaysAgo} AND repository = 'acme/web'`,
        /differs from the records for \[/,
      ],
      [`UPDATE audit_usage SET count = count + 1 WHERE day = ${twoDaysAgo}`, /differs from the records for \[/],
      [`UPDATE audit_usage_claims SET greatest = 'zzz' WHERE day = ${twoDaysAgo}`, /differs from the records for claim \S+ of policy deploy/],
      [`DELETE FROM audit_usage WHERE day = ${twoDaysAgo}`, /differs from the records for \[/],
      ['UPDATE audit_usage_state SET seq = 2', /differs from the records/],
    ] as const) {
      db.run('SAVEPOINT edit');
      db.run(edit);
      expect(usageMismatch(db), edit).toMatch(/^the usage roll-up \(the inventory\) of \d{4}-\d\d-\d\d /);
      expect(usageMismatch(db), edit).toMatch(what);
      db.run('ROLLBACK TO edit');
      db.run('RELEASE edit');
    }
    // The first day's rows are not held, and nothing reads them: a thousand grants made up there change no count.
    db.run(`UPDATE audit_usage SET count = 1000 WHERE day = ${twoDaysAgo - 1}`);
    expect(usageMismatch(db)).toBeUndefined();
    expect(await grantsOf()).toEqual({ 'acme/api': 3, 'acme/web': 1 });
    db.close();
  });

  it("drops from the roll-up, by migration 22, the housekeeping an older release counted as its operator's grants", async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-rollup-')), DATABASE_FILE));
    migrate(db, 21);
    const store = new SqliteAuditStore(db);
    const now = Date.now();
    const time = now - 2 * 86_400_000;
    const context = { requestId: 'r', clientIp: undefined, userAgent: undefined };
    await store.append(auditEvent({ time: new Date(now - 3 * 86_400_000).toISOString() }));
    await store.append(
      examinationRecord(
        { issuer: BROKER_ISSUER },
        { caller: { operator: 'alice' }, reason: 'token_revoked', detail: 'revoked by operator alice', context, now: time },
      ),
    );
    refreshUsage(db);
    // The row an older release rolled up for that revocation: the operator's grant.
    const group = [BROKER_ISSUER, null, null, 'alice', null, 'granted', 'token_revoked', null, null, null, null];
    db.run(
      `INSERT INTO audit_usage (day, grp, issuer, tenant, repository, subject, policy_id, decision, reason, scopes, audiences,
        github_permissions, github_repositories, count, first, last) VALUES (?, ?, ${group.map(() => '?').join(', ')}, 1, ?, ?)`,
      [Math.floor(time / 86_400_000), JSON.stringify(group), ...group, time, time],
    );
    expect(usageMismatch(db)).toMatch(/differs from the records for \[.+"token_revoked"/);
    migrate(db);
    expect(usageMismatch(db)).toBeUndefined();
    expect((await store.usage({ since: now - 5 * 86_400_000, until: now })).map((row) => row.reason)).toEqual(['no_policy_matched']);
    db.close();
  });

  it('holds the roll-up in one read: a broker rolling up from the same file between two of its statements is no mismatch', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-rollup-')), DATABASE_FILE);
    const broker = openSqliteFile(path);
    migrate(broker);
    const store = new SqliteAuditStore(broker);
    const append = async (count: number) => {
      for (let i = 0; i < count; i += 1) await store.append(auditEvent({ time: new Date(Date.now() - 86_400_000 * (i % 2)).toISOString() }));
    };
    await append(3);
    refreshUsage(broker);
    await append(2);
    const verifier = openSqliteFile(path);
    let reads = 0;
    // The broker's own roll-up (an inventory asked for) lands right after the check's second statement.
    const interleaved = new Proxy(verifier, {
      get(target, name) {
        if (name !== 'all') return Reflect.get(target, name);
        return (sql: string, params?: SqlValue[]) => {
          const rows = target.all(sql, params);
          reads += 1;
          if (reads === 2) refreshUsage(broker);
          return rows;
        };
      },
    });
    expect(usageMismatch(interleaved)).toBeUndefined();
    expect(reads).toBeGreaterThan(2);
    expect(broker.all('SELECT seq FROM audit_usage_state')).toEqual([{ seq: 5 }]);
    verifier.close();
    broker.close();
  });

  it('keeps the roll-up held to the records through pruning: the first day (with pruned records in its sums) aside, and pruned days dropped', async () => {
    const { db, store, sign, verify } = await macedLog('keyway-rollup-');
    const now = Date.now();
    const cutoff = now - 30 * 86_400_000;
    const newest = now - 1000;
    // Records 60 days back, then either side of the retention cutoff (one day in the roll-up may hold both), then today's.
    for (const time of [now - 60 * 86_400_000, cutoff - 1000, cutoff + 1000, newest]) await store.append(auditEvent({ time: new Date(time).toISOString() }));
    refreshUsage(db);
    expect(usageMismatch(db)).toBeUndefined();
    expect((await maintainAuditLog(store, sign, { now, retentionDays: 30, verify })).pruned).toBe(2);
    // The 60-day-old day left with its records; the cutoff's day (if it is one day) still sums the pruned record, and is not held.
    expect(db.all<{ day: number }>('SELECT day FROM audit_usage WHERE day * 86400000 < ?', [cutoff - 86_400_000])).toEqual([]);
    expect(usageMismatch(db)).toBeUndefined();
    refreshUsage(db);
    expect(usageMismatch(db)).toBeUndefined();
    // Today's sums are held still: the day of the newest record, which in the first second of a UTC day is yesterday.
    const newestDay = Math.floor(newest / 86_400_000);
    db.run('UPDATE audit_usage SET count = count + 1 WHERE day = ?', [newestDay]);
    expect(usageMismatch(db)).toMatch(/^the usage roll-up \(the inventory\) of \d{4}-\d\d-\d\d differs from the records for \[/);
    // A log pruned of every record keeps no roll-up.
    db.run('UPDATE audit_usage SET count = count - 1 WHERE day = ?', [newestDay]);
    expect((await maintainAuditLog(store, sign, { now: now + 31 * 86_400_000, retentionDays: 30, verify })).pruned).toBe(2);
    expect(db.all('SELECT day FROM audit_usage UNION ALL SELECT day FROM audit_usage_claims')).toEqual([]);
    expect(usageMismatch(db)).toBeUndefined();
    db.close();
  });

  it("holds a log pruned to its anchor to the start of MACs the anchor signs, not the store's: a record after it stripped of its MAC is refused", async () => {
    const { db, store, sign, verify } = await macedLog('keyway-anchor-macs-');
    const now = Date.now();
    for (let index = 0; index < 3; index += 1) await store.append(auditEvent({ time: new Date(now - 60 * 86_400_000).toISOString() }));
    // Every record pruned: the anchor at 3 is the only checkpoint left.
    expect((await maintainAuditLog(store, sign, { now, retentionDays: 30, verify })).pruned).toBe(3);
    expect(db.all('SELECT seq FROM audit_checkpoints')).toEqual([{ seq: 3 }]);
    // The broker appends record 4; whoever writes the file takes its MAC out and raises the store's start of MACs past it.
    await store.append(auditEvent({ time: new Date(now).toISOString() }));
    db.run('UPDATE audit_events SET mac = NULL WHERE seq = 4');
    db.run('UPDATE audit_mac_start SET macs_after = 100');
    await expect(maintainAuditLog(store, sign, { now, retentionDays: 30, verify })).rejects.toThrow(
      /^record 4 carries no MAC, though the broker has MACed every record after 0: the broker did not append it$/,
    );
    expect(db.all('SELECT seq FROM audit_checkpoints')).toEqual([{ seq: 3 }]);
    db.close();
  });

  it('prunes up to the newest checkpoint under a record after it without a MAC, keeps that record, and fails the round all the same', async () => {
    const { db, store, sign, verify } = await macedLog('keyway-unsigned-head-');
    const now = Date.now();
    for (let index = 0; index < 2; index += 1) await store.append(auditEvent({ time: new Date(now - 60 * 86_400_000).toISOString() }));
    expect((await maintainAuditLog(store, sign, { now, retentionDays: 0, verify })).checkpoint).toMatchObject({ seq: 2 });
    // Whoever writes the file appends a record as old as the others, with no MAC: past the retention window, after the checkpoint.
    expect(appendForgedRecord(db)).toBe(3);
    const refused = /^record 3 carries no MAC, though the broker has MACed every record after 0: the broker did not append it$/;
    await expect(maintainAuditLog(store, sign, { now, retentionDays: 30, verify })).rejects.toThrow(refused);
    // Pruned up to the checkpoint (now the anchor), not past it: the record nothing vouches for stays for audit verify.
    expect(db.all('SELECT seq FROM audit_events')).toEqual([{ seq: 3 }]);
    expect(db.all('SELECT seq FROM audit_checkpoints')).toEqual([{ seq: 2 }]);
    // The next round has nothing left to prune up to the anchor, and fails as before.
    await expect(maintainAuditLog(store, sign, { now, retentionDays: 30, verify })).rejects.toThrow(refused);
    expect(db.all('SELECT seq FROM audit_events')).toEqual([{ seq: 3 }]);
    db.close();
  });

  it("signs no record appended to a stopped broker's file, its hash chained right: the next broker's upkeep refuses it, logged by record", async () => {
    const { root, github } = setup();
    const broker = await start(root);
    for (let index = 0; index < 2; index += 1)
      expect((await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer))))).status).toBe(200);
    // Closed, the broker signs its head (seq 2).
    await running.splice(0)[0]?.close();
    // Whoever can write the file while no broker runs appends a grant of its own, chained as the broker chains them.
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    expect(appendForgedRecord(db)).toBe(3);
    db.close();
    const lines: string[] = [];
    running.push(await startNodeBroker(testConfig(root), { log: jsonLogger({}, { write: (line) => lines.push(line) }) }));
    const failed = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line['message'] === 'audit log upkeep failed');
    expect(failed).toMatchObject([
      {
        level: 'error',
        error: 'ChainConflictError: record 3 carries no MAC, though the broker has MACed every record after 0: the broker did not append it',
      },
    ]);
    const after = openSqliteFile(join(root, 'data', DATABASE_FILE));
    expect(after.all('SELECT seq FROM audit_checkpoints ORDER BY seq')).toEqual([{ seq: 2 }]);
    after.close();
  });

  it('holds the records a previous master key MACed after the last checkpoint to KEYWAY_MASTER_KEY_PREVIOUS: the broker signs them', async () => {
    const { root } = setup();
    const [before, after] = [parseMasterKey(generateMasterKey(), 'before'), parseMasterKey(generateMasterKey(), 'after')];
    // Records a broker under the master key before appended and stopped before it signed them (a crash).
    mkdirSync(join(root, 'data'), { mode: 0o700 });
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    migrate(db);
    const store = new SqliteAuditStore(db, { macs: new RecordMacs(recordMacKeys({ current: before, previous: [] })) });
    for (let index = 0; index < 2; index += 1) await store.append(auditEvent());
    const lines: string[] = [];
    const config = testConfig(root, { masterKeys: { current: after, previous: [before] } });
    running.push(await startNodeBroker(config, { log: jsonLogger({}, { write: (line) => lines.push(line) }) }));
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line['level'] === 'error')).toEqual([]);
    expect(db.all('SELECT seq FROM audit_checkpoints ORDER BY seq')).toEqual([{ seq: 2 }]);
    db.close();
  });

  it("fails the running broker's upkeep over a span with a record rewritten and its link mended: logged by record, no anchor, nothing pruned", async () => {
    const { root } = setup();
    const lines: string[] = [];
    let clock = Date.now() - 40 * 86_400_000;
    const broker = await startNodeBroker(testConfig(root, { audit: readAuditSettings({ KEYWAY_AUDIT_RETENTION_DAYS: '30' }) }), {
      log: jsonLogger({}, { write: (line) => lines.push(line) }),
      now: () => clock,
    });
    running.push(broker);
    // Two records 40 days old (refusals are recorded as well as grants), then three of today.
    for (let index = 0; index < 5; index += 1) {
      if (index === 2) clock = Date.now();
      expect((await exchange(broker, exchangeForm('not-a-token'))).status).toBe(400);
    }
    // Whoever can write the file rewrites record 3 and links record 4 to its new hash, while the broker runs.
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const [second, third] = db.all<{ hash: string; event: string }>('SELECT hash, event FROM audit_events WHERE seq IN (2, 3) ORDER BY seq');
    const forged = { ...(JSON.parse(third!.event) as AuditEvent), detail: 'rewritten' };
    const forgedHash = chainHash(second!.hash, forged);
    // With the MAC of its new hash too (made here with the broker's master key), so that what is held is pruning's check.
    const macs = new RecordMacs(recordMacKeys(readMasterKeyFile(join(root, 'data', MASTER_KEY_FILE))));
    db.run('UPDATE audit_events SET event = ?, hash = ?, mac = ? WHERE seq = 3', [
      canonicalEvent(forged).text,
      forgedHash,
      macs.make({ seq: 3, hash: forgedHash }),
    ]);
    db.run('UPDATE audit_events SET prev_hash = ? WHERE seq = 4', [forgedHash]);
    await broker.auditUpkeep();
    const failed = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line['message'] === 'audit log upkeep failed');
    expect(failed).toMatchObject([{ level: 'error', error: 'ChainConflictError: record 4 no longer matches its hash' }]);
    expect(db.all('SELECT seq FROM audit_events ORDER BY seq')).toEqual([1, 2, 3, 4, 5].map((seq) => ({ seq })));
    // The head's checkpoint, signed before the prune was checked; no anchor.
    expect(db.all('SELECT seq FROM audit_checkpoints')).toEqual([{ seq: 5 }]);
    db.close();
  });

  it('counts each refused upkeep round in /metrics by its class; /healthz is degraded once none succeeded for three intervals, /v1/health says why, until one does', async () => {
    let clock = Date.now();
    const { broker, tokenFor } = await operatedBroker({ olga: 'health:read', clock: () => clock });
    running.push(broker);
    const db = openSqliteFile(join(broker.config.dataDir, DATABASE_FILE), { existing: true });
    try {
      const metrics = async () => (await (await fetch(`${broker.url}/metrics`)).text()).split('\n');
      const sample = async (series: string) => (await metrics()).find((line) => line.startsWith(`${series} `))?.slice(series.length + 1);
      const failures = async () =>
        (await metrics())
          .filter((line) => line.startsWith('keyway_audit_upkeep_failures_total{'))
          .map((line) => line.replace(/^\S+\{reason="(\w+)"\} /, '$1 '));
      const healthz = async () => ((await (await fetch(`${broker.url}/healthz`)).json()) as { status: string }).status;
      const interval = broker.config.audit.checkpointSeconds * 1000;
      // Taken first: each exchange is a record, which would come after the one forged below.
      const token = await tokenFor('olga@acme.dev', 'health:read');
      await broker.auditUpkeep();
      expect(await sample('keyway_audit_upkeep_since_success_seconds')).toBe('0');
      expect(await failures()).toEqual(['signing_keys_unavailable 0', 'chain_conflict 0', 'checkpoints_rolled_back 0', 'error 0']);

      // Whoever can write the file appends a record of their own: every round refuses to sign past it from now on.
      const forged = appendForgedRecord(db);
      clock += interval;
      await broker.auditUpkeep();
      expect(await failures()).toEqual(['signing_keys_unavailable 0', 'chain_conflict 1', 'checkpoints_rolled_back 0', 'error 0']);
      // One failed round is tried again at the next interval: not yet degraded.
      expect(await healthz()).toBe('ok');

      clock += 2 * interval + 1000;
      await broker.auditUpkeep();
      const overdue = String((3 * interval + 1000) / 1000);
      expect(await sample('keyway_audit_upkeep_since_success_seconds')).toBe(overdue);
      expect(await failures()).toEqual(['signing_keys_unavailable 0', 'chain_conflict 2', 'checkpoints_rolled_back 0', 'error 0']);
      expect(await healthz()).toBe('degraded');
      const detail = await fetch(`${broker.url}/v1/health`, { headers: { authorization: `Bearer ${token}` } });
      expect(await detail.json()).toMatchObject({
        status: 'degraded',
        audit_upkeep: { since_success_seconds: Number(overdue), last_failure: 'chain_conflict' },
      });

      // The forged record taken out again: the next round succeeds, and the broker is healthy again.
      db.run('DELETE FROM audit_events WHERE seq = ?', [forged]);
      await broker.auditUpkeep();
      expect(await sample('keyway_audit_upkeep_since_success_seconds')).toBe('0');
      expect(await healthz()).toBe('ok');
      const healthy = await fetch(`${broker.url}/v1/health`, { headers: { authorization: `Bearer ${token}` } });
      expect(await healthy.json()).not.toHaveProperty('audit_upkeep');

      // Checkpoints this broker signed deleted behind its back: counted by their own class.
      db.run('DELETE FROM audit_checkpoints');
      await broker.auditUpkeep();
      expect(await failures()).toEqual(['signing_keys_unavailable 0', 'chain_conflict 2', 'checkpoints_rolled_back 1', 'error 0']);
    } finally {
      db.close();
    }
  });

  it(
    "trusts no key on the database's word: a planted key that re-signs a rewritten log, an unattested removed key, and keys pinned with --keys",
    async () => {
      const log = await closedLog(4);
      const verify = (dir: string, ...extra: string[]) => cli(['audit', 'verify', '--data-dir', dir, ...extra]);
      const planted = await generateSigningKey(Date.now());
      const insertPlanted = (db: SqliteFile) =>
        db.run("INSERT INTO signing_keys (kid, alg, state, created_at, removed_at, public_jwk) VALUES (?, 'ES256', 'removed', ?, ?, ?)", [
          planted.kid,
          planted.createdAt,
          planted.createdAt,
          JSON.stringify(planted.publicJwk),
        ]);
      // Write access to the database, not the master key: a removed key of one's own (no private part to check), the log rewritten, its checkpoint re-signed.
      const ring = await KeyRing.from([planted]);
      const forgedCopy = async (options?: { masterKey: boolean }, more: (db: SqliteFile) => void = () => {}): Promise<string> => {
        let head = '';
        const dir = log.tampered((db) => {
          insertPlanted(db);
          head = rewrite(db, 4);
          more(db);
        }, options);
        const signed = await checkpointSigner(log.issuer, () => ring, Date.now)({ seq: 4, hash: head });
        const db = openSqliteFile(join(dir, DATABASE_FILE));
        db.run('UPDATE audit_checkpoints SET hash = ?, jws = ? WHERE seq = 4', [signed.hash, signed.jws]);
        db.close();
        return dir;
      };

      const planting = await verify(await forgedCopy());
      expect(planting.code, planting.stdout).toBe(1);
      expect(planting.stdout).toMatch(
        new RegExp(
          `^TAMPERED \\(checkpoint_unvouched\\) at seq 4: .* signed by key ${planted.kid}, which nothing vouches for: it was removed without an attestation`,
        ),
      );
      // Restoring it as a backup is refused the same way, and nothing is written.
      const forged = await forgedCopy();
      const restoredInto = join(mkdtempSync(join(tmpdir(), 'keyway-restore-')), 'data');
      const restore = await cli([
        'restore',
        '--backup',
        join(forged, DATABASE_FILE),
        '--data-dir',
        restoredInto,
        '--master-key-file',
        join(forged, MASTER_KEY_FILE),
      ]);
      expect(restore.code, restore.stderr).toBe(1);
      expect(restore.stderr).toContain(
        `(checkpoint_unvouched at seq 4): the checkpoint stored for seq 4 is signed by key ${planted.kid}, which nothing vouches for`,
      );
      expect(existsSync(restoredInto)).toBe(false);
      const copied = await verify(
        await forgedCopy(undefined, (db) =>
          db.run("UPDATE signing_keys SET attestation = (SELECT attestation FROM signing_keys WHERE state = 'current') WHERE kid = ?", [planted.kid]),
        ),
      );
      expect(copied.code, copied.stdout).toBe(1);
      expect(copied.stdout).toContain(
        `signed by key ${planted.kid}, which nothing vouches for: it is not vouched for: its attestation was not made by the master key`,
      );

      // A planted key that signs nothing kept is reported all the same.
      const unused = await verify(log.tampered(insertPlanted));
      expect(unused.code, unused.stdout).toBe(1);
      expect(unused.stdout).toContain(`TAMPERED (key_unvouched): the log's store holds signing key ${planted.kid}, which nothing vouches for`);

      // Without the master key the database vouches for nothing; keys pinned from /v1/audit/keys do.
      const bare = log.tampered(() => {}, { masterKey: false });
      expect(await verify(bare)).toMatchObject({ code: 2, stderr: expect.stringContaining("trusts no key on the database's word") });
      expect(await verify(bare, '--keys', log.pinned)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: 4 records/) });
      const pinnedOnly = await verify(await forgedCopy({ masterKey: false }), '--keys', log.pinned);
      expect(pinnedOnly.code).toBe(1);
      expect(pinnedOnly.stdout).toContain(`signed by key ${planted.kid}, which nothing vouches for: it is not pinned, and no master key was given`);

      // The broker's own key, as if removed before keyway attested keys: nothing vouches for it, until the auditor pins it.
      const legacy = log.tampered((db) => db.run("UPDATE signing_keys SET state = 'removed', private_jwk = NULL, attestation = NULL"));
      const unpinned = await verify(legacy);
      expect(unpinned.code).toBe(1);
      expect(unpinned.stdout).toMatch(
        /^TAMPERED \(checkpoint_unvouched\) at seq 4: .* it was removed without an attestation \(before keyway attested keys, or planted\)/,
      );
      expect(await verify(legacy, '--keys', log.pinned)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: 4 records/) });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    "verifies an auditor's copy of the database with --keys (no master key) in a directory made as mkdir makes one (0755)",
    async () => {
      const log = await closedLog(4);
      // docs/audit/verification.md: how an auditor without the master key verifies. A directory made under the usual umask 022, holding a copy of keyway.db.
      const copy = join(mkdtempSync(join(tmpdir(), 'keyway-auditor-')), 'copy');
      mkdirSync(copy, { mode: 0o755 });
      copyFileSync(
        join(
          log.tampered(() => {}, { masterKey: false }),
          DATABASE_FILE,
        ),
        join(copy, DATABASE_FILE),
      );
      const verified = await cli(['audit', 'verify', '--data-dir', copy, '--keys', log.pinned]);
      expect(verified, verified.stderr).toMatchObject({ code: 0, stdout: expect.stringMatching(/^intact: 4 records/) });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'keyway audit verify changes nothing in the directory it reads, not even the mode of keyway.db',
    async () => {
      const log = await closedLog(4);
      // An auditor's copy, owner-only as the broker keeps its own, keyway.db 0644 as cp made it: the copy is evidence.
      const copy = mkdtempSync(join(tmpdir(), 'keyway-auditor-'));
      copyFileSync(
        join(
          log.tampered(() => {}, { masterKey: false }),
          DATABASE_FILE,
        ),
        join(copy, DATABASE_FILE),
      );
      chmodSync(join(copy, DATABASE_FILE), 0o644);
      expect(await cli(['audit', 'verify', '--data-dir', copy, '--keys', log.pinned])).toMatchObject({ code: 0 });
      expect((statSync(join(copy, DATABASE_FILE)).mode & 0o777).toString(8)).toBe('644');
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'names the record whose index columns (what queries, stats and alerts read) were edited, each column in turn',
    async () => {
      const log = await closedLog(3);
      for (const column of AUDIT_INDEX_COLUMNS) {
        let id = '';
        const dir = log.tampered((db) => {
          const [row] = db.all<{ id: string; value: SqlValue }>(`SELECT id, ${column} AS value FROM audit_events WHERE seq = 3`);
          id = row?.id ?? '';
          db.run(`UPDATE audit_events SET ${column} = ? WHERE seq = 3`, [column === 'time' ? Number(row?.value) - 1 : `${String(row?.value)}-edited`]);
        });
        const verified = await cli(['audit', 'verify', '--data-dir', dir]);
        expect(verified.code, column).toBe(1);
        expect(verified.stdout).toMatch(
          new RegExp(`^TAMPERED \\(index_mismatch\\) at seq 3: record 3 \\(${id}\\) was edited in the index queries read: its ${column} column holds `),
        );
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'names the record whose stored text holds a member twice: the hash covers the last, the queries read the first',
    async () => {
      const log = await closedLog(3);
      let id = '';
      const dir = log.tampered((db) => {
        const [row] = db.all<{ id: string; event: string }>('SELECT id, event FROM audit_events WHERE seq = 2');
        id = row?.id ?? '';
        // JSON.parse keeps the last "issuer", SQLite's json_extract the first: the hash still holds, the inventory would not.
        db.run('UPDATE audit_events SET event = ? WHERE seq = 2', [row!.event.replace(/^\{/, '{"issuer":"https://elsewhere.example",')]);
      });
      const verified = await cli(['audit', 'verify', '--data-dir', dir]);
      expect(verified.code).toBe(1);
      expect(verified.stdout).toMatch(
        new RegExp(
          `^TAMPERED \\(edited\\) at seq 2: record 2 \\(${id}\\) was edited: its stored text names "issuer" twice, so queries read another value than the hash covers`,
        ),
      );
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it('issues no token while the log cannot be written, and afterwards the chain is whole and no answered request lacks its record', async () => {
    const { root, github, dataDir } = setup();
    const broker = await start(root);
    const saboteur = openSqliteFile(join(dataDir, DATABASE_FILE));
    const answered: string[] = [];
    const attempt = async (expected: number) => {
      const result = await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer))));
      expect(result.status).toBe(expected);
      if (expected === 503) {
        expect(result.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      } else {
        answered.push(result.body['audit_event_id'] as string);
      }
    };
    try {
      await Promise.all([attempt(200), attempt(200), attempt(200)]);
      saboteur.exec('ALTER TABLE audit_events RENAME TO audit_events_away');
      await Promise.all([attempt(503), attempt(503)]);
      saboteur.exec('ALTER TABLE audit_events_away RENAME TO audit_events');
      await Promise.all([attempt(200), attempt(200)]);
      const stored = saboteur.all<{ id: string; seq: number }>('SELECT id, seq FROM audit_events ORDER BY seq');
      expect(stored.map((row) => row.id).sort()).toEqual([...answered].sort());
      expect(stored.map((row) => row.seq)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      saboteur.close();
    }
    await broker.auditUpkeep();
    const verified = await cli(['audit', 'verify', '--data-dir', dataDir]);
    expect(verified.stdout).toMatch(/^intact: 5 records/);
    expect(verified.code).toBe(0);
  });

  it("holds records from before MACs to their chain in upkeep's span check: a record rewritten and re-hashed, or one deleted, is named", async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-premac-')), DATABASE_FILE));
    migrate(db);
    // No MACs: the records an older keyway wrote, which only their links hold together.
    const store = new SqliteAuditStore(db);
    for (let index = 0; index < 5; index += 1) await store.append(auditEvent());
    const from = { seq: 0, hash: GENESIS_HASH };
    const to = await store.head();
    await store.chainHolds(from, to);

    const [third] = db.all<{ prev_hash: string; event: string }>('SELECT prev_hash, event FROM audit_events WHERE seq = 3');
    const rewritten = third!.event.replace('"decision":"denied"', '"decision":"granted"');
    expect(rewritten).not.toBe(third!.event);
    db.run('UPDATE audit_events SET event = ?, hash = ? WHERE seq = 3', [rewritten, chainHashOfCanonical(third!.prev_hash, rewritten)]);
    await expect(store.chainHolds(from, to)).rejects.toThrow('record 4 does not commit to the record (or checkpoint) before it');

    db.run('DELETE FROM audit_events WHERE seq = 3');
    await expect(store.chainHolds(from, to)).rejects.toThrow('record 4 follows record 2: records are missing');
    db.close();
  });

  it('appends a batch whole or not at all: a record that cannot be stored leaves none of its batch, and the head where it was', async () => {
    const { db, store } = await macedLog('keyway-batch-');
    await store.append(auditEvent());
    const head = await store.head();
    const first = auditEvent();
    // The second of the batch reuses the first's id, which the table holds unique: the batch fails at its second insert.
    await expect(store.appendAll([first, { ...auditEvent(), id: first.id }])).rejects.toThrow(/UNIQUE/);
    expect(await store.head()).toEqual(head);
    expect(await store.get(first.id)).toBeUndefined();
    expect(db.all('SELECT COUNT(*) AS n FROM audit_events')).toEqual([{ n: 1 }]);
    db.close();
  });

  it('commits appends that arrive together in one transaction, and answers each only once it is durable', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-group-')), DATABASE_FILE);
    const db = openSqliteFile(path);
    migrate(db);
    const commits: number[] = [];
    const store = new GroupCommitAuditStore(db, path, { onCommit: (records) => commits.push(records) });
    const reader = openSqliteFile(path);
    const seenOnCommit: boolean[] = [];
    const append = async () => {
      const written = auditEvent();
      await store.append(written);
      seenOnCommit.push(reader.all('SELECT 1 FROM audit_events WHERE id = ?', [written.id]).length === 1);
    };
    await Promise.all(Array.from({ length: 40 }, append));
    expect(commits).toEqual([40]);
    // While one batch commits, the next one gathers.
    await Promise.all([append(), new Promise((resolve) => setImmediate(resolve)).then(() => Promise.all(Array.from({ length: 9 }, append)))]);
    expect(commits).toEqual([40, 1, 9]);
    expect(seenOnCommit).toEqual(Array(50).fill(true));
    await store.close();
    reader.close();
    db.close();
  });

  it('records internal_error when something unexpected breaks, and answers 500 without a token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-broken-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    migrate(db);
    const audit = new GroupCommitAuditStore(db, join(dir, DATABASE_FILE));
    let broken = false;
    const policies = new PolicySet([]);
    const ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    const { app } = createBroker({
      settings: testConfig(dir),
      policies: () => {
        if (broken) throw new TypeError('the policy source failed');
        return policies;
      },
      keys: () => ring,
      audit,
      alerts: new SqliteAlertStore(db),
      replay: new SqliteReplayGuard(db),
      revocations: ((guard) => revocationList(guard, (keys, now) => guard.holdsAll(keys, now)))(new SqliteReplayGuard(db)),
      clientIp: () => '127.0.0.1',
      limiter: new MemoryRateLimiter(),
      log: silentLogger,
    });
    broken = true;
    const github = freshIssuer(inject('testIssuerBase'), 'broken-gh');
    const response = await app.request('/token', {
      method: 'POST',
      body: exchangeForm(await github.sign(ciClaims(github.url, BROKER_ISSUER))),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(500);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'server_error', error_description: 'internal error' });
    expect(body).not.toHaveProperty('access_token');
    expect(await audit.get(body['audit_event_id'] as string)).toMatchObject({
      decision: 'error',
      reason: 'internal_error',
      detail: 'TypeError: the policy source failed',
    });
    await audit.close();
    db.close();
  });

  it(
    'keyway audit explain replays a recorded refusal with the policy set that decided, and says so once that set is gone',
    async () => {
      const { root, github, people, dataDir } = setup();
      const broker = await start(root);
      const refused = await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, { ref: 'refs/heads/nope' }))));
      const id = String(refused.body['audit_event_id']);
      const token = await auditorToken({ issuer: BROKER_ISSUER, request: (path, init) => fetch(`${broker.url}${path}`, init) }, people);
      const env = { KEYWAY_TOKEN: token, KEYWAY_ISSUER: BROKER_ISSUER, KEYWAY_ALLOW_HTTP_LOOPBACK: '1' };
      const policies = join(root, 'policies');

      for (const source of [
        ['--data-dir', dataDir],
        ['--url', broker.url],
      ]) {
        const explained = await cli(['audit', 'explain', id, ...source, '--policies', policies, '--json'], env);
        expect(explained.code, explained.stderr).toBe(0);
        expect(JSON.parse(explained.stdout)).toMatchObject({
          evaluated: true,
          audit_event: { id, decision: 'denied', reason: 'no_policy_matched' },
          policy_set: { same: true },
          closest: { policy: 'deploy/production', failed_claims: ['ref'] },
          decision: { granted: false, reason: 'no_policy_matched' },
        });
      }
      const text = await cli(['audit', 'explain', id, '--data-dir', dataDir, '--policies', policies], env);
      expect(text.stdout).toContain('note: explained by the policy set that decided (sha256:');
      expect(text.stdout).toContain('✗ ref: "refs/heads/main"  — token has "refs/heads/nope"');
      expect(text.stdout).toContain('closest allow policy: deploy/production (failed: ref)');

      // The policies changed since: the set that decided is not the one given, and the answer says so.
      const later = writeTree({
        'policies/deploy/production.yaml': readFileSync(join(policies, 'deploy/production.yaml'), 'utf8').replace(
          'refs/heads/main',
          '{ glob: "refs/heads/*" }',
        ),
      });
      const changed = JSON.parse((await cli(['audit', 'explain', id, '--data-dir', dataDir, '--policies', join(later, 'policies'), '--json'], env)).stdout);
      expect(changed).toMatchObject({ policy_set: { same: false }, decision: { granted: true, policy: 'deploy/production' } });
      expect(changed.policy_set.decided).not.toBe(changed.policy_set.explained);
      expect(changed.note).toMatch(/is not the one given here .* may differ from what was decided then/);

      expect(await cli(['audit', 'explain', '01JBZ7N3D8K1C2F4G6H8J0K2M4', '--data-dir', dataDir, '--policies', policies], env)).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('no audit event has id 01JBZ7N3D8K1C2F4G6H8J0K2M4'),
      });
      expect(await cli(['audit', 'explain', 'nope', '--data-dir', dataDir], env)).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('not an audit event id'),
      });
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'keyway audit explain and export say a subject token not shaped as a JWT is kept by its length, where its hash would be',
    async () => {
      const { root, dataDir } = setup();
      const broker = await start(root);
      // A passphrase sent by mistake: shaped as a compact JWS, so /token records it, by its length alone.
      const secret = `correct.horse.battery-${crypto.randomUUID().slice(0, 8)}`;
      const id = String((await exchange(broker, exchangeForm(secret))).body['audit_event_id']);
      await running.splice(0)[0]?.close();

      const env = { KEYWAY_ISSUER: BROKER_ISSUER, KEYWAY_ALLOW_HTTP_LOOPBACK: '1' };
      const explained = await cli(['audit', 'explain', id, '--data-dir', dataDir, '--policies', join(root, 'policies')], env);
      expect(explained.code, explained.stderr).toBe(0);
      expect(explained.stdout).toContain(`it was not shaped as a JWT: ${secret.length} characters, kept by its length, without a hash`);

      const csv = await cli(['audit', 'export', '--data-dir', dataDir, '--format', 'csv'], env);
      expect(csv.code, csv.stderr).toBe(0);
      const [header = '', ...rows] = csv.stdout.trim().split('\r\n');
      expect(header).toMatch(/,subject_token_sha256,.*,hash,subject_token_length$/);
      const cells = (rows.find((line) => line.includes(id)) ?? '').split(',');
      // No cell up to the hash's holds a comma (the token claimed nothing); the length is the last, after the chain's hash.
      expect(cells[header.split(',').indexOf('subject_token_sha256')]).toBe('');
      expect(cells.at(-1)).toBe(String(secret.length));
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'keyway inventory reads the data directory (read-only: the roll-up as the broker left it, the rest raw) and a running broker alike',
    async () => {
      const { root, github, people, dataDir } = setup();
      const first = await start(root);
      await exchange(first, exchangeForm(await github.sign(ciClaims(github.url, first.config.issuer))));
      await exchange(first, exchangeForm(await github.sign(ciClaims(github.url, first.config.issuer, { ref: 'refs/heads/nope' }))));
      const token = await auditorToken({ issuer: BROKER_ISSUER, request: (path, init) => fetch(`${first.url}${path}`, init) }, people);
      // Its audit writer rolls up every two seconds, which a loaded machine outlasts: stopped, and its roll-up emptied as a
      // rebuild empties it, the log is read raw below whatever the clock did.
      await running.splice(0)[0]?.close();
      const database = openSqliteFile(join(dataDir, DATABASE_FILE));
      database.exec(AUDIT_USAGE_REBUILD);
      database.close();
      const env = { KEYWAY_TOKEN: token };
      const rolledUp = () => openSqliteFile(join(dataDir, DATABASE_FILE)).all<{ seq: number }>('SELECT seq FROM audit_usage_state');
      const counts = async (source: string[]) => {
        const result = await cli(['inventory', ...source, '--json', '--sort', 'identity'], env);
        expect(result.stderr).toBe('');
        const inventory = JSON.parse(result.stdout) as Inventory;
        return inventory.identities.map((identity) => [identity.repository ?? identity.subject, identity.grants, identity.denials, identity.scopes]);
      };
      // By identity: the GitHub issuer (…/log-gh-…) sorts before the people's (…/log-people-…).
      const expected = [
        [
          'acme/api',
          1,
          1,
          [
            { value: 'artifacts:read', count: 1 },
            { value: 'deploy:write', count: 1 },
          ],
        ],
        ['alice@acme.dev', 1, 0, [{ value: 'audit:read', count: 1 }]],
      ];
      // Read-only, with nothing rolled up: every record raw, and nothing written.
      expect(await counts(['--data-dir', dataDir])).toEqual(expected);
      expect(rolledUp()).toEqual([]);
      // The broker rolls up as it answers; the data directory then reads the roll-up, and the same counts.
      const broker = await start(root);
      expect(await counts(['--url', broker.url])).toEqual(expected);
      expect(rolledUp()).toEqual([{ seq: 3 }]);
      expect(await counts(['--data-dir', dataDir])).toEqual(expected);

      const table = await cli(['inventory', '--data-dir', dataDir], env);
      expect(table.stdout).toMatch(/^\S+ to \S+: 2 identities\n\nidentity\s+tenant\s+grants\s+denials\s+last seen\s+policies\s+granted\n/);
      expect(table.stdout).toMatch(/acme\/api\s+1200934\s+1\s+1\s+/);
      const csv = await cli(['inventory', '--data-dir', dataDir, '--format', 'csv']);
      expect(csv.stdout.split('\r\n')[0]).toMatch(/^issuer,tenant,repository,subject,first_seen,last_seen,grants,denials,/);
      for (const [args, message] of [
        [['--since', 'last week'], 'since must be'],
        [['--sort', 'size'], 'sort must be one of'],
        [['--format', 'xml'], '--format is one of'],
        [['--subject', 'x'], 'not subject'],
        [['--upstream', 'github'], 'not upstream'],
      ] as const) {
        expect(await cli(['inventory', '--data-dir', dataDir, ...args])).toMatchObject({ code: 2, stderr: expect.stringContaining(message) });
      }
      expect(await cli(['inventory', '--url', broker.url, '--since', 'last week'], env)).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('400 invalid_request'),
      });
    },
    2 * CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'holds the log to the checkpoints signed under an earlier KEYWAY_ISSUER, in upkeep and in keyway audit verify from either source',
    async () => {
      const { root, github, people, dataDir } = setup();
      const before = await startNodeBroker(testConfig(root, { issuer: 'https://keyway.before.example' }), { log: silentLogger });
      running.push(before);
      for (let index = 0; index < 2; index += 1) await exchange(before, exchangeForm(await github.sign(ciClaims(github.url, before.config.issuer))));
      await before.auditUpkeep();
      await running.splice(0)[0]?.close();
      // The operator moves the broker to its new public URL: the same data directory, the same keys.
      const broker = await start(root);
      await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer))));
      const token = await auditorToken({ issuer: BROKER_ISSUER, request: (path, init) => fetch(`${broker.url}${path}`, init) }, people);
      await broker.auditUpkeep();
      for (const source of [
        ['--data-dir', dataDir],
        ['--url', broker.url],
      ]) {
        const verified = await cli(['audit', 'verify', ...source], { KEYWAY_TOKEN: token });
        expect(verified.stdout, source[0]).toMatch(/^intact: 4 records \(seq 1…4\), 2 signed checkpoints/);
        expect(verified.code).toBe(0);
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'keyway audit query, export, stats and verify read the data directory and a running broker alike',
    async () => {
      const { root, github, people, dataDir } = setup();
      const broker = await start(root);
      const granted = await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer))));
      await exchange(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, { ref: 'refs/heads/nope' }))));
      const token = await auditorToken({ issuer: BROKER_ISSUER, request: (path, init) => fetch(`${broker.url}${path}`, init) }, people);
      await broker.auditUpkeep();
      const local = ['--data-dir', dataDir];
      const remote = ['--url', broker.url];
      const env = { KEYWAY_TOKEN: token };

      for (const source of [local, remote]) {
        const table = await cli(['audit', 'query', ...source, '--decision', 'granted', '--repository', 'acme/api'], env);
        expect(table.code).toBe(0);
        expect(table.stdout).toMatch(/^time\s+decision\s+reason\s+subject\s+repository\s+policy\s+id\n/);
        expect(table.stdout).toContain(String(granted.body['audit_event_id']));
        expect(table.stdout).toMatch(/1 events\n$/);

        const json = JSON.parse((await cli(['audit', 'query', ...source, '--json', '--reason', 'no_policy_matched'], env)).stdout) as {
          events: { reason: string; chain: { seq: number } }[];
        };
        expect(json.events).toHaveLength(1);
        expect(json.events[0]).toMatchObject({ reason: 'no_policy_matched', chain: { seq: 2 } });

        const stats = JSON.parse((await cli(['audit', 'stats', ...source, '--json', '--since', '1h', '--bucket', 'minute'], env)).stdout) as {
          totals: Record<string, number>;
        };
        expect(stats.totals).toEqual({ granted: 2, denied: 1, malformed: 0, error: 0 });
        expect((await cli(['audit', 'stats', ...source], env)).stdout).toMatch(/total\s+2\s+1\s+0\s+0/);

        const out = join(mkdtempSync(join(tmpdir(), 'keyway-export-')), 'audit.csv');
        // It holds subjects, claims and client addresses: 0600 whatever the umask.
        const umask = process.umask(0o000);
        try {
          expect((await cli(['audit', 'export', ...source, '--format', 'csv', '--output', out], env)).code).toBe(0);
        } finally {
          process.umask(umask);
        }
        expect(statSync(out).mode & 0o777).toBe(0o600);
        expect(readFileSync(out, 'utf8').trim().split('\r\n')).toHaveLength(4);
        expect(await cli(['audit', 'export', ...source, '--output', out], env)).toMatchObject({ code: 2, stderr: expect.stringContaining('exists') });
        // An export that fails leaves no file, not even an empty or partial one.
        const refused = join(dirname(out), 'refused.ndjson');
        const failed = await cli(['audit', 'export', ...source, '--since', 'last week', '--output', refused], env);
        expect(failed).toMatchObject({ stderr: expect.stringContaining('since') });
        expect(failed.code).not.toBe(0);
        expect(readdirSync(dirname(out))).toEqual(['audit.csv']);
        expect(await cli(['audit', 'export', ...source, '--output', join(dirname(out), 'no-such-directory', 'audit.csv')], env)).toMatchObject({
          code: 1,
          stderr: expect.stringContaining('cannot write the export to'),
        });
        const ndjson = (await cli(['audit', 'export', ...source, '--decision', 'denied'], env)).stdout.trim().split('\n');
        expect(ndjson.map((line) => JSON.parse(line).reason)).toEqual(['no_policy_matched']);

        const verified = await cli(['audit', 'verify', ...source], env);
        expect(verified.stdout).toMatch(/^intact: 3 records \(seq 1…3\), \d+ signed checkpoints/);
        expect(verified.code).toBe(0);
      }

      // A grant turned into a denial in the live file's index: queries follow the edit, verify names it, from either source.
      const insider = openSqliteFile(join(dataDir, DATABASE_FILE));
      insider.run("UPDATE audit_events SET decision = 'denied' WHERE id = ?", [String(granted.body['audit_event_id'])]);
      insider.close();
      for (const source of [local, remote]) {
        expect((await cli(['audit', 'query', ...source, '--decision', 'granted', '--repository', 'acme/api'], env)).stdout).toMatch(/no events match\n$/);
        const tampered = await cli(['audit', 'verify', ...source], env);
        const named = `^TAMPERED \\(index_mismatch\\) at seq 1: record 1 \\(${String(granted.body['audit_event_id'])}\\) `;
        expect(tampered.stdout).toMatch(new RegExp(`${named}.* its decision column holds "denied", the hashed record says "granted"`));
        expect(tampered.code).toBe(1);
      }

      expect(await cli(['audit', 'query', '--url', broker.url], { KEYWAY_TOKEN: '' })).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--url needs --token'),
      });
      expect(await cli(['audit', 'query', '--url', broker.url, '--token', 'garbage'])).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('401 invalid_token'),
      });
      expect(await cli(['audit', 'query', '--url', 'http://keyway.example.com', '--token', token])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('https'),
      });
      expect(await cli(['audit', 'query', ...local, '--decision', 'maybe'])).toMatchObject({ code: 2, stderr: expect.stringContaining('decision') });
      expect(await cli(['audit', 'verify', ...local, '--decision', 'granted'])).toMatchObject({ code: 2 });
      const missing = join(mkdtempSync(join(tmpdir(), 'keyway-none-')), 'nothing');
      mkdirSync(missing);
      expect(await cli(['audit', 'verify', '--data-dir', missing])).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot open the audit log') });
      expect((await cli(['audit', 'query', '--help'])).stdout).toContain('usage: keyway audit query');
    },
    // Three dozen CLI runs, not one dozen: it took 54 of the 60 s under load.
    2 * CLI_RUNS_TIMEOUT_MS,
  );
});
