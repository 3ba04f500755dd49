import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChainHead } from '../../src/core/audit/checkpoint.ts';
import { signRootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { auditStatementSigner, checkpointSigner } from '../../src/core/audit/sign-checkpoint.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { generateMasterKey, readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { shardedExportText } from '../../src/storage/sharded-state-export.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { dumpDatabase } from '../../src/storage/state-dump.ts';
import { auditEvent } from '../suites/store-contract.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const ISSUER = 'https://keyway.example.com';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['src/cli/main.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

type EditableExport = { shards: { tables: Record<string, Record<string, unknown>[]> }[] };

/**
 * An export as a Workers deployment's GET /v1/backup writes it, from the same stores and dump in
 * real SQLite files: the state (its signing keys sealed under `masterKey`), two shards of three
 * records each with a signed checkpoint, and a root checkpoint over both heads.
 */
async function shardedExport(dir: string, masterKey: string): Promise<string> {
  const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey }) as MasterKeys);
  const open = (name: string) => {
    const db = openSqliteFile(join(dir, name));
    migrate(db);
    return db;
  };
  const state = open('state.db');
  const keys = new SqliteKeyStore(state, box);
  await keys.initializeKeys(await generateSigningKey(Date.now()));
  const ring = await KeyRing.from(await keys.listKeys());
  const shards = [open('shard-0.db'), open('shard-1.db')];
  const heads: Record<string, ChainHead> = {};
  for (const [index, db] of shards.entries()) {
    const store = new SqliteAuditStore(db);
    for (let n = 0; n < 3; n += 1) await store.append(auditEvent());
    await store.addCheckpoint(await checkpointSigner(ISSUER, () => ring, Date.now)(await store.head()));
    heads[String(index)] = await store.head();
  }
  const root = await signRootCheckpoint(
    auditStatementSigner(ISSUER, () => ring, Date.now),
    heads,
  );
  const text = shardedExportText(
    JSON.stringify(dumpDatabase(state, Date.now())),
    shards.map((db) => JSON.stringify(dumpDatabase(db, Date.now()))),
    [root],
  );
  for (const db of [state, ...shards]) db.close();
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
