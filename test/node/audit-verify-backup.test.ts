import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KEY_RING_SERVED_MS } from '../../src/core/mint/key-life-cycle.ts';
import { CHECKPOINT_TYPE, type ChainHead } from '../../src/core/audit/checkpoint.ts';
import { signRootCheckpoint, type RootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { maintainAuditLog } from '../../src/core/audit/maintain-audit-log.ts';
import { auditStatementSigner, checkpointSigner, checkpointVerifier } from '../../src/core/audit/sign-checkpoint.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { generateMasterKey, readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { shardedExportText } from '../../src/storage/sharded-state-export.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { dumpDatabase } from '../../src/storage/state-dump.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { runKeyway } from './node-harness.ts';
import { TEST_MAC_KEYS } from '../support/record-mac-keys.ts';
import { RecordMacs } from '../../src/core/audit/record-mac.ts';

const ISSUER = 'https://keyway.example.com';

const cli = runKeyway;

type EditableExport = {
  state: { tables: Record<string, Record<string, unknown>[]> };
  shards: { tables: Record<string, Record<string, unknown>[]> }[];
  root_checkpoints?: { jws: string }[];
};

/** A sharded log as a Workers deployment keeps it, in real SQLite files: the state (its keys sealed under the master key) and each shard. */
interface ShardedLog {
  readonly dir: string;
  readonly ring: KeyRing;
  readonly state: SqliteFile;
  readonly shards: SqliteFile[];
  readonly roots: RootCheckpoint[];
}

async function shardedLog(dir: string, masterKey: string, count: number): Promise<ShardedLog> {
  const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey }) as MasterKeys);
  const state = openDb(dir, 'state.db');
  const keys = new SqliteKeyStore(state, box);
  await keys.initializeKeys(await generateSigningKey(Date.now()));
  const ring = await KeyRing.from(await keys.listKeys());
  return { dir, ring, state, shards: Array.from({ length: count }, (_, index) => openDb(dir, `shard-${index}.db`)), roots: [] };
}

function openDb(dir: string, name: string): SqliteFile {
  const db = openSqliteFile(join(dir, name));
  migrate(db);
  return db;
}

/** `n` records dated `time` appended to a chain, then a checkpoint of its head signed, as the shard's Cron upkeep signs one. */
async function append(log: ShardedLog, db: SqliteFile, n: number, time = Date.now()): Promise<void> {
  const store = new SqliteAuditStore(db);
  for (let count = 0; count < n; count += 1) await store.append(auditEvent({ time: new Date(time).toISOString() }));
  await store.addCheckpoint(await checkpointSigner(ISSUER, () => log.ring, Date.now)(await store.head()));
}

/** A root checkpoint over the first `named` shards' heads, signed at `at`, as the Cron round signs one. */
async function signRoot(log: ShardedLog, at: number, named = log.shards.length): Promise<RootCheckpoint> {
  const heads: Record<string, ChainHead> = {};
  for (const [index, db] of log.shards.slice(0, named).entries()) heads[String(index)] = await new SqliteAuditStore(db).head();
  const root = await signRootCheckpoint(
    auditStatementSigner(
      ISSUER,
      () => log.ring,
      () => at,
    ),
    heads,
  );
  log.roots.push(root);
  return root;
}

/** The export GET /v1/backup writes of the log as it is now, with its root checkpoints. */
function exportOf(log: ShardedLog): string {
  return shardedExportText(
    JSON.stringify(dumpDatabase(log.state, Date.now())),
    log.shards.map((db) => JSON.stringify(dumpDatabase(db, Date.now()))),
    log.roots,
  );
}

/**
 * An export as a Workers deployment's GET /v1/backup writes it, from the same stores and dump in
 * real SQLite files: the state (its signing keys sealed under `masterKey`), two shards of three
 * records each with a signed checkpoint, and a root checkpoint over both heads.
 */
async function shardedExport(dir: string, masterKey: string): Promise<string> {
  const log = await shardedLog(dir, masterKey, 2);
  for (const db of log.shards) await append(log, db, 3);
  await signRoot(log, Date.now());
  const text = exportOf(log);
  for (const db of [log.state, ...log.shards]) db.close();
  return text;
}

describe('keyway audit verify --backup: an export of a sharded Workers log', () => {
  it('verifies every shard against the root checkpoints; names the shard and record of an edit, or a shard cut short (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-verify-backup-'));
    const masterKey = generateMasterKey();
    const file = join(dir, 'keyway-state.json');
    writeFileSync(file, await shardedExport(dir, masterKey));
    const env = { KEYWAY_MASTER_KEY: masterKey };

    const intact = await cli(['audit', 'verify', '--backup', file], env);
    expect(intact.stderr).toBe('');
    expect(intact.stdout).toContain('shard 0: intact: 3 records (seq 1…3), 1 signed checkpoints');
    expect(intact.stdout).toContain('shard 1: intact: 3 records (seq 1…3), 1 signed checkpoints');
    expect(intact.stdout).toContain('1 root checkpoints');
    expect(intact.stdout).toContain('intact: 2 chains');
    expect(intact.code).toBe(0);

    // One record of shard 1 edited in the file, its chain link left as it was.
    const edited = JSON.parse(readFileSync(file, 'utf8')) as EditableExport;
    const record = edited.shards[1]?.tables['audit_events']?.[1];
    if (record === undefined) throw new Error('shard 1 holds a second record');
    record['event'] = String(record['event']).replace('"decision":"', '"decision":"x');
    writeFileSync(join(dir, 'edited.json'), JSON.stringify(edited));
    const tampered = await cli(['audit', 'verify', '--backup', join(dir, 'edited.json'), '--json'], env);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ ok: false, problem: { kind: 'edited', shard: '1', seq: 2 } });
    expect(tampered.code).toBe(1);

    // Shard 0 cut short with its checkpoint: its own chain still holds, only the root checkpoint says records are gone.
    const cut = JSON.parse(readFileSync(file, 'utf8')) as EditableExport;
    const shard = cut.shards[0];
    if (shard === undefined) throw new Error('the export holds shard 0');
    shard.tables['audit_events'] = (shard.tables['audit_events'] ?? []).slice(0, 2);
    shard.tables['audit_checkpoints'] = [];
    writeFileSync(join(dir, 'cut.json'), JSON.stringify(cut));
    const incomplete = await cli(['audit', 'verify', '--backup', join(dir, 'cut.json')], env);
    expect(incomplete.stdout).toMatch(/^INCOMPLETE \(records_missing\) in shard 0/m);
    expect(incomplete.code).toBe(1);

    // No key on the file's word: neither the master key nor --keys, and nothing is verified.
    const unkeyed = await cli(['audit', 'verify', '--backup', file], { KEYWAY_MASTER_KEY: '' });
    expect(unkeyed.stderr).toContain('trusts no key on the export');
    expect(unkeyed.stdout).toBe('');
    expect(unkeyed.code).toBe(2);
  }, 60_000);
});

describe('keyway audit verify --backup: a file that chooses its own root checkpoints, held to those kept apart (--roots)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyway-verify-roots-'));
  const masterKey = generateMasterKey();
  const env = { KEYWAY_MASTER_KEY: masterKey };
  const kept = join(dir, 'kept-roots.json');
  const now = Date.now();
  /** The export after the first root checkpoint, after the second, and after the shard count grew from 2 to 3. */
  let older: string;
  let current: string;
  let grown: string;
  /** An export of one chain (`keyway-state-dump`), as a deployment of before the shards wrote it. */
  let single: string;
  /** A chain with a checkpoint the broker signed, its records dated between the two root checkpoints. */
  let early: unknown;
  /** The same, its record dated in the second the newest root checkpoint was signed in (its iat, in whole seconds). */
  let sameSecond: unknown;

  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const edited = (text: string, edit: (json: EditableExport) => void): string => {
    const json = JSON.parse(text) as EditableExport;
    edit(json);
    return JSON.stringify(json);
  };
  /** Shard 0 cut back to its first three records and the checkpoint of them, as the older root checkpoint signed it. */
  const cutShard0 = (json: EditableExport): void => {
    const tables = json.shards[0]?.tables;
    if (tables === undefined) throw new Error('the export holds shard 0');
    tables['audit_events'] = (tables['audit_events'] ?? []).slice(0, 3);
    tables['audit_checkpoints'] = (tables['audit_checkpoints'] ?? []).filter((row) => Number(row['seq']) <= 3);
  };
  const verify = (path: string, ...args: string[]) => cli(['audit', 'verify', '--backup', path, ...args], env);
  const verdict = async (path: string, ...args: string[]) => {
    const result = await verify(path, ...args, '--json');
    return { code: result.code, report: JSON.parse(result.stdout) as { ok: boolean; problem?: Record<string, unknown>; chains: { shard: string }[] } };
  };

  beforeAll(async () => {
    const log = await shardedLog(dir, masterKey, 2);
    for (const db of log.shards) await append(log, db, 3, now - 120_000);
    const first = await signRoot(log, now - 100_000);
    older = exportOf(log);
    for (const db of log.shards) await append(log, db, 2, now - 90_000);
    const second = await signRoot(log, now - 60_000);
    current = exportOf(log);
    // What a witness kept: a page of GET /v1/audit/root-checkpoints, then a …/latest answer appended to it.
    writeFileSync(kept, `${JSON.stringify({ root_checkpoints: [first, second] })}\n${JSON.stringify(second)}\n`);
    const stray = openDb(dir, 'early.db');
    await append(log, stray, 2, now - 80_000);
    early = dumpDatabase(stray, now);
    const late = openDb(dir, 'same-second.db');
    await append(log, late, 1, now - 60_000);
    sameSecond = dumpDatabase(late, now);
    // KEYWAY_AUDIT_SHARDS grown from 2 to 3 after the second root checkpoint: shard 2's records are all later.
    log.shards.push(openDb(dir, 'shard-2.db'));
    await append(log, log.shards[2] as SqliteFile, 2, now - 30_000);
    grown = exportOf(log);
    single = JSON.stringify(dumpDatabase(log.state, now));
    for (const db of [log.state, stray, late, ...log.shards]) db.close();
  }, 60_000);

  it('refuses an export that holds audit records but no root checkpoint: taken out with a shard cut short, or emptied', async () => {
    const stripped = file(
      'stripped.json',
      edited(current, (json) => {
        delete json.root_checkpoints;
        cutShard0(json);
      }),
    );
    const refused = await verify(stripped);
    expect(refused.stderr).toContain('the export holds audit records but no root checkpoint');
    expect(refused.stdout).toBe('');
    expect(refused.code).toBe(1);
    const emptied = await verify(
      file(
        'emptied.json',
        edited(current, (json) => (json.root_checkpoints = [])),
      ),
    );
    expect(emptied.stderr).toContain('the export holds audit records but no root checkpoint');
    expect(emptied.code).toBe(1);
  }, 60_000);

  it('names the records gone from a file whose newest root checkpoint was taken out and a shard cut back to the older one (--roots)', async () => {
    const cut = file(
      'cut.json',
      edited(current, (json) => {
        json.root_checkpoints = json.root_checkpoints?.slice(0, 1);
        cutShard0(json);
      }),
    );
    // The file alone agrees with itself: only a witness kept apart tells.
    expect((await verify(cut)).code).toBe(0);
    const held = await verify(cut, '--roots', kept);
    expect(held.stdout).toContain('1 root checkpoints and 3 kept');
    expect(held.stdout).toMatch(/^INCOMPLETE \(records_missing\) in shard 0 at seq 4: the log ends at 3; a kept checkpoint covers up to 5/m);
    expect(held.code).toBe(1);
  }, 60_000);

  it('fails a file older than the kept root checkpoints: an older export, or a whole one with its newest root taken out', async () => {
    const old = await verdict(file('older.json', older), '--roots', kept);
    expect(old.report).toMatchObject({ ok: false, problem: { kind: 'records_missing', shard: '0', seq: 4 } });
    expect(old.code).toBe(1);
    const trimmed = await verify(
      file(
        'trimmed.json',
        edited(current, (json) => (json.root_checkpoints = json.root_checkpoints?.slice(0, 1))),
      ),
      '--roots',
      kept,
    );
    expect(trimmed.stdout).toMatch(
      /^INCOMPLETE \(root_checkpoints_rolled_back\): the log's newest root checkpoint was signed at .*, but one you kept was signed at/m,
    );
    expect(trimmed.code).toBe(1);
    const whole = await verify(file('current.json', current), '--roots', kept);
    expect(whole.stdout).toContain('2 root checkpoints and 3 kept');
    expect(whole.stdout).toContain('intact: 2 chains');
    expect(whole.code).toBe(0);
  }, 60_000);

  it('fails on a kept root checkpoint the broker did not sign (kept_root_checkpoint_invalid)', async () => {
    const answer = JSON.parse(readFileSync(kept, 'utf8').split('\n')[1] ?? '') as { jws: string };
    const [header, payload, signature] = answer.jws.split('.');
    const claims = JSON.parse(Buffer.from(String(payload), 'base64url').toString()) as { heads: Record<string, { seq: number }> };
    for (const head of Object.values(claims.heads)) head.seq -= 1;
    const forged = file('forged-roots.json', JSON.stringify({ jws: `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}` }));
    const { code, report } = await verdict(file('current.json', current), '--roots', forged);
    expect(report).toMatchObject({ ok: false, problem: { kind: 'kept_root_checkpoint_invalid' } });
    expect(code).toBe(1);
  }, 60_000);

  it('fails on a chain no root checkpoint names: a shard past the count with earlier records, a legacy chain from nowhere', async () => {
    const extra = await verdict(
      file(
        'extra.json',
        edited(current, (json) => json.shards.push(early as EditableExport['shards'][number])),
      ),
    );
    expect(extra.report).toMatchObject({ ok: false, problem: { kind: 'root_chain_unnamed', shard: '2', seq: 1 } });
    expect(extra.code).toBe(1);
    // Dated in the very second the newest root was signed in: that root may have been signed after it, and named no shard 2.
    const close = await verdict(
      file(
        'same-second.json',
        edited(current, (json) => json.shards.push(sameSecond as EditableExport['shards'][number])),
      ),
    );
    expect(close.report).toMatchObject({ ok: false, problem: { kind: 'root_chain_unnamed', shard: '2', seq: 1 } });
    expect(close.code).toBe(1);
    const legacy = await verdict(
      file(
        'legacy.json',
        edited(current, (json) => {
          const tables = json.shards[0]?.tables ?? {};
          json.state.tables['audit_events'] = tables['audit_events'] ?? [];
          json.state.tables['audit_checkpoints'] = tables['audit_checkpoints'] ?? [];
        }),
      ),
    );
    expect(legacy.report.chains.map((chain) => chain.shard)).toEqual(['legacy', '0', '1']);
    expect(legacy.report).toMatchObject({ ok: false, problem: { kind: 'root_chain_unnamed', shard: 'legacy' } });
    expect(legacy.code).toBe(1);
  }, 60_000);

  it('fails on a shard the newest root checkpoint names that the file no longer holds (root_chain_missing)', async () => {
    const dropped = await verdict(
      file(
        'dropped.json',
        edited(current, (json) => json.shards.pop()),
      ),
    );
    expect(dropped.report.chains.map((chain) => chain.shard)).toEqual(['0']);
    expect(dropped.report).toMatchObject({
      ok: false,
      problem: {
        kind: 'root_chain_missing',
        shard: '1',
        message: expect.stringMatching(/^shard 1 is missing: the root checkpoint signed at .+ covers it up to seq 5$/),
      },
    });
    expect(dropped.code).toBe(1);
  }, 60_000);

  it('refuses --roots for a log of one chain, and --checkpoints for a sharded one (exit 2)', async () => {
    const one = await verify(file('single.json', single), '--roots', kept);
    expect(one.stderr).toContain("--roots holds a sharded log's root checkpoints: this log is one chain");
    expect(one.code).toBe(2);
    const checkpoint = file('kept-checkpoints.json', JSON.stringify({ seq: 3, hash: 'a'.repeat(64), time: new Date(now).toISOString(), jws: 'a.b.c' }));
    const sharded = await verify(file('current.json', current), '--checkpoints', checkpoint);
    expect(sharded.stderr).toContain("--checkpoints holds one chain's checkpoints");
    expect(sharded.code).toBe(2);
  }, 60_000);

  it('passes a shard count grown since the newest root checkpoint: the added shard holds only later records', async () => {
    const result = await verify(file('grown.json', grown), '--roots', kept);
    expect(result.stdout).toContain('shard 2: intact: 2 records (seq 1…2), 1 signed checkpoints, in no root checkpoint yet');
    expect(result.stdout).toContain('intact: 3 chains');
    expect(result.code).toBe(0);
  }, 60_000);
});

describe('keyway audit verify: what it prints of each verdict, as the operator reads it', () => {
  const masterKey = generateMasterKey();
  const env = { KEYWAY_MASTER_KEY: masterKey };
  const DAY = 86_400_000;
  const verify = (path: string, ...args: string[]) => cli(['audit', 'verify', '--backup', path, ...args], env);
  /** One chain, as a deployment of before the shards exported it: the state alone, its records in it. */
  const oneChain = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-verify-print-'));
    const log = await shardedLog(dir, masterKey, 0);
    const save = (name: string) => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(dumpDatabase(log.state, Date.now())));
      return path;
    };
    return { dir, log, store: new SqliteAuditStore(log.state, { macs: new RecordMacs(TEST_MAC_KEYS) }), save };
  };

  it('one chain pruned past the retention: where it starts, its anchor, and the kept checkpoints that agree', async () => {
    const { dir, log, store, save } = await oneChain();
    const sign = checkpointSigner(ISSUER, () => log.ring, Date.now);
    const check = checkpointVerifier(() => log.ring);
    const now = Date.now();
    for (const days of [40, 35]) await store.append(auditEvent({ time: new Date(now - days * DAY).toISOString() }));
    // A round before the records left the window signed the head, and a witness kept that checkpoint.
    const kept = (await maintainAuditLog(store, sign, { now: now - 20 * DAY, retentionDays: 30, verify: check })).checkpoint;
    expect((await maintainAuditLog(store, sign, { now, retentionDays: 30, verify: check })).pruned).toBe(2);
    const emptied = save('pruned-all.json');
    await store.append(auditEvent());
    const head = await store.head();
    const pruned = save('pruned.json');
    log.state.close();
    const keptFile = join(dir, 'kept-checkpoint.json');
    writeFileSync(keptFile, JSON.stringify(kept));

    expect(await verify(emptied)).toMatchObject({ code: 0, stdout: 'intact: no records, 1 signed checkpoints, anchored after pruning at checkpoint 2\n' });
    expect(await verify(pruned, '--checkpoints', keptFile)).toMatchObject({
      code: 0,
      stdout: `intact: 1 records (seq 3…3), 1 signed checkpoints, anchored after pruning at checkpoint 2, 1 kept checkpoints agree; head ${head.hash}\n`,
    });
  }, 60_000);

  it('one chain an older keyway pruned, its anchor naming no role: says that anchor shows the records before it gone, not that pruning removed them', async () => {
    const { log, store, save } = await oneChain();
    for (let count = 0; count < 2; count += 1) await store.append(auditEvent());
    const anchor = await store.head();
    await store.append(auditEvent());
    const { jws, iat } = await auditStatementSigner(ISSUER, () => log.ring, Date.now)({ seq: anchor.seq, hash: anchor.hash }, CHECKPOINT_TYPE);
    expect(await store.prune({ ...anchor, time: new Date(iat * 1000).toISOString(), jws })).toBe(2);
    const head = await store.head();
    const path = save('unmarked.json');
    log.state.close();
    expect(await verify(path)).toMatchObject({
      code: 0,
      stdout:
        'intact: 1 records (seq 3…3), 1 signed checkpoints, anchored after pruning at checkpoint 2 (signed before anchors were marked: ' +
        `it shows the records before it are gone, not that pruning removed them); head ${head.hash}\n`,
    });
  }, 60_000);

  it('one chain whose store holds a key nothing vouches for: the verdict, then a line naming the key and why', async () => {
    const { log, store, save } = await oneChain();
    await store.append(auditEvent());
    const planted = await generateSigningKey(Date.now());
    log.state.run("INSERT INTO signing_keys (kid, alg, state, created_at, removed_at, public_jwk) VALUES (?, 'ES256', 'removed', ?, ?, ?)", [
      planted.kid,
      planted.createdAt,
      planted.createdAt,
      JSON.stringify(planted.publicJwk),
    ]);
    const path = save('planted.json');
    log.state.close();
    const why = 'was removed without an attestation (before keyway attested keys, or planted)';
    expect(await verify(path)).toMatchObject({
      code: 1,
      stdout: `TAMPERED (key_unvouched): the log's store holds signing key ${planted.kid}, which nothing vouches for: it ${why}\nunvouched key ${planted.kid}: it ${why}\n`,
    });
  }, 60_000);

  describe('a sharded log', () => {
    let dir: string;
    let none: string;
    let intact: string;
    let broken: string;
    let root: RootCheckpoint;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'keyway-verify-print-'));
      const log = await shardedLog(dir, masterKey, 2);
      const save = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      none = save('none.json', exportOf(log));
      await append(log, log.shards[0] as SqliteFile, 3);
      root = await signRoot(log, Date.now());
      intact = save('intact.json', exportOf(log));
      const edited = JSON.parse(exportOf(log)) as EditableExport;
      const record = edited.shards[0]?.tables['audit_events']?.[1];
      if (record === undefined) throw new Error('shard 0 holds a second record');
      record['event'] = String(record['event']).replace('"decision":"', '"decision":"x');
      broken = save('broken.json', JSON.stringify(edited));
      for (const db of [log.state, ...log.shards]) db.close();
    }, 60_000);

    it('a line per shard, an empty one too, then the root checkpoints, when the newest was signed and how many chains it covers', async () => {
      expect(await verify(none)).toMatchObject({
        code: 0,
        stdout:
          'shard 0: intact: no records, 0 signed checkpoints\nshard 1: intact: no records, 0 signed checkpoints\n0 root checkpoints (none yet)\nintact: 2 chains\n',
      });
      expect(await verify(intact)).toMatchObject({
        code: 0,
        stdout:
          'shard 0: intact: 3 records (seq 1…3), 1 signed checkpoints\nshard 1: intact: no records, 0 signed checkpoints\n' +
          `1 root checkpoints (the latest signed at ${root.time} covers 2 chains)\nintact: 2 chains\n`,
      });
      const edited = await verify(broken);
      expect(edited.code).toBe(1);
      expect(edited.stdout).toMatch(
        /^shard 0: BROKEN: 2 records \(seq 1…2\), 1 signed checkpoints\nshard 1: intact: no records, 0 signed checkpoints\n1 root checkpoints .*\nTAMPERED \(edited\) in shard 0 at seq 2: record 2 \(\w+\) was edited: its content no longer matches its hash\n$/,
      );
    }, 60_000);

    it('refuses --backup beside another source (--url, --data-dir or --token): exit 2, and nothing verified', async () => {
      for (const other of [
        ['--url', 'http://127.0.0.1:9'],
        ['--data-dir', dir],
        ['--token', 'a-token'],
      ]) {
        expect(await verify(intact, ...other), other[0]).toMatchObject({
          code: 2,
          stdout: '',
          stderr: expect.stringContaining('--backup is the source: give it without --url, --token or --data-dir'),
        });
      }
    }, 60_000);
  });
});

describe('keyway audit verify --url: what a broker answers reaches the terminal inert', () => {
  it("a refusal's description holding an escape sequence, a bell and a line feed is printed on one line, each escaped", async () => {
    const description = 'token expired\u001b]0;owned\u0007\n::warning::forged';
    const broker = await serveOnLoopback(() => Response.json({ error: 'invalid_token', error_description: description }, { status: 401 }));
    try {
      const result = await cli(['audit', 'verify', '--url', broker.base, '--token', 'not-a-token']);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('keyway: /v1/audit/keys answered 401 invalid_token: token expired\\u001b]0;owned\\u0007\\u000a::warning::forged\n');
    } finally {
      await broker.close();
    }
  });
});

describe('keyway audit verify --backup: a signing key whose withdrawal one shard records', () => {
  it("fails a checkpoint of another shard and a root checkpoint signed with it past the allowance, the log's or one kept apart, and a root backdated over the withdrawal; not what it signed before, by another shard's seqs or over earlier heads", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-verify-withdrawn-'));
    const masterKey = generateMasterKey();
    const log = await shardedLog(dir, masterKey, 2);
    const [first, second] = log.shards as [SqliteFile, SqliteFile];
    const stolen = log.ring;
    const kid = stolen.signing.kid;
    const at = Date.now();
    for (const db of log.shards) await append(log, db, 2);
    const keys = new SqliteKeyStore(log.state, await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey }) as MasterKeys));
    expect(await keys.withdrawKey(kid, at)).toMatchObject({ status: 'withdrawn' });
    // Its first record could not be written (the log was unavailable): the withdrawal asked again ten seconds later records it.
    const detail = `signing key ${kid} (ES256) was withdrawn already at ${new Date(at).toISOString()}: nothing changed; asked by operator olga@acme.dev`;
    await new SqliteAuditStore(first).append(
      auditEvent({ time: new Date(at + 10_000).toISOString(), decision: 'granted', reason: 'signing_key_withdrawn', detail }),
    );
    const broker = { ...log, ring: await KeyRing.from(await keys.listKeys()) };
    await append(broker, second, 1);
    await signRoot(broker, at + 1000);
    const file = join(dir, 'keyway-state.json');
    const verify = async () => {
      writeFileSync(file, exportOf(log));
      const verified = await cli(['audit', 'verify', '--json', '--backup', file], { KEYWAY_MASTER_KEY: masterKey });
      return { code: verified.code, report: JSON.parse(verified.stdout) as object };
    };
    const refused = (problem: object) => ({ code: 1, report: { ok: false, problem: { kind: 'checkpoint_key_withdrawn', kid, ...problem } } });
    expect(await verify()).toMatchObject({ code: 0, report: { ok: true } });

    // The thief signs a checkpoint of the other shard's first record (which none signs yet), two minutes after the withdrawal.
    const [record] = second.all<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = 1');
    const head = { seq: 1, hash: record?.hash ?? '' };
    const thief = { ...log, ring: stolen };
    await new SqliteAuditStore(second).addCheckpoint(
      await checkpointSigner(
        ISSUER,
        () => stolen,
        () => at + 120_000,
      )(head),
    );
    // The time stored beside it, moved back, counts for nothing: only its signed iat does.
    second.run('UPDATE audit_checkpoints SET time = ? WHERE seq = ?', [at - 60_000, head.seq]);
    expect(await verify()).toMatchObject(refused({ shard: '1', seq: head.seq, message: expect.stringContaining(`withdrawn (shard 0 record 3,`) }));
    second.run('DELETE FROM audit_checkpoints WHERE seq = ?', [head.seq]);
    expect(await verify()).toMatchObject({ code: 0 });

    // A root checkpoint: 80 s after the withdrawal (70 s after its record), or dated more than 75 s before the withdrawal
    // whose record it signs.
    await signRoot(thief, at + 80_000);
    expect(await verify()).toMatchObject(
      refused({ message: expect.stringMatching(/^a root checkpoint signed at .* past the 75 s a broker may still sign with it$/) }),
    );
    log.roots.pop();
    await signRoot(thief, at - KEY_RING_SERVED_MS - 5000);
    expect(await verify()).toMatchObject(
      refused({
        message: expect.stringMatching(/signs the record of that key's withdrawal \(shard 0 record 3, .* it is backdated, more than 75 s before it$/),
      }),
    );

    // One kept apart (--roots) that the log does not hold, older than the log's newest (no roll back): held to it all the same.
    log.roots.pop();
    const kept = join(dir, 'kept-roots.json');
    writeFileSync(kept, JSON.stringify({ root_checkpoints: [await signRoot(thief, at + 80_000)] }));
    log.roots.pop();
    await signRoot(broker, at + 90_000);
    expect(await verify()).toMatchObject({ code: 0, report: { ok: true } });
    writeFileSync(file, exportOf(log));
    const held = await cli(['audit', 'verify', '--json', '--backup', file, '--roots', kept], { KEYWAY_MASTER_KEY: masterKey });
    expect({ code: held.code, report: JSON.parse(held.stdout) as object }).toMatchObject(
      refused({ message: expect.stringMatching(/^a root checkpoint signed at .* past the 75 s a broker may still sign with it$/) }),
    );

    // Another shard's seqs are of its own counter: a checkpoint there past the withdrawal's seq, signed with the key long
    // before it was withdrawn, is no backdated one.
    const other = new SqliteAuditStore(second);
    await other.append(auditEvent({ time: new Date(at - 100_000).toISOString() }));
    const past = await other.head();
    expect(past.seq).toBeGreaterThan(3);
    await other.addCheckpoint(
      await checkpointSigner(
        ISSUER,
        () => stolen,
        () => at - KEY_RING_SERVED_MS - 5000,
      )(past),
    );
    expect(await verify()).toMatchObject({ code: 0, report: { ok: true } });
    // So is a root checkpoint it signed then over the head before the withdrawal's record, and the other shard's at that seq.
    const headAt = (db: SqliteFile, seq: number) => ({
      seq,
      hash: db.all<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = ?', [seq])[0]?.hash ?? '',
    });
    const early = auditStatementSigner(
      ISSUER,
      () => stolen,
      () => at - KEY_RING_SERVED_MS - 5000,
    );
    log.roots.unshift(await signRootCheckpoint(early, { '0': headAt(first, 2), '1': headAt(second, 3) }));
    expect(await verify()).toMatchObject({ code: 0, report: { ok: true } });
    for (const db of [log.state, ...log.shards]) db.close();
  }, 60_000);
});
