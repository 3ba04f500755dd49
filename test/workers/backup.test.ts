import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { auditStatementSigner, checkpointSigner } from '../../src/core/audit/sign-checkpoint.ts';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { canonicalEvent, chainHash } from '../../src/core/audit/chain-hash.ts';
import { signRootCheckpoint, type RootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { verifyAuditLog } from '../../src/core/audit/verify-chain.ts';
import { verifyShardedAuditLog } from '../../src/core/audit/verify-shards.ts';
import { keptRootCheckpoints } from '../../src/core/audit/kept-roots.ts';
import { remoteAuditLog } from '../../src/cli/remote-audit-log.ts';
import { jsonLogger, silentLogger, type Logger } from '../../src/core/log.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { SIGNING_KEY_PURPOSE, SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { durableObjectSql } from '../../src/runtimes/workers/durable-object-sql.ts';
import { keywayState, stateStores } from '../../src/runtimes/workers/keyway-state.ts';
import { auditShard, DEFAULT_AUDIT_SHARDS, readAuditShards } from '../../src/runtimes/workers/audit-shard-state.ts';
import { createWorkerBroker, scheduledAuditUpkeep, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { SCHEMA_VERSION } from '../../src/storage/migrate.ts';
import { sqliteAuditLogSource } from '../../src/storage/sqlite-audit-log-source.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { exportedAuditLog } from '../../src/storage/sharded-state-export.ts';
import { restoreDump, StateRestoreError, type StateDump } from '../../src/storage/state-dump.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import { auditEvent } from '../support/audit-event.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { failedAuditRound, ownStateNamespace, workerEnv } from './workers-harness.ts';

const issuer = workerEnv.KEYWAY_ISSUER;
const RESTORE_TOKEN = `restore-${crypto.randomUUID()}`;
const people = new TestIssuer(inject('testIssuerBase'), `w-backup-${crypto.randomUUID().slice(0, 8)}`);
const policies = [
  {
    path: 'ops/olga.yaml',
    text: `version: 1\nissuer: "${people.url}"\nmatch: { sub: olga@acme.dev }\ngrant: { audience: ${issuer}, scopes: [backup:read, audit:read] }\n`,
  },
  { path: 'ops/bob.yaml', text: `version: 1\nissuer: "${people.url}"\nmatch: { sub: bob@acme.dev }\ngrant: { audience: ${issuer}, scopes: [audit:read] }\n` },
  // Its conditions are recorded, so its grants name the CI run (audit_run_grants).
  {
    path: 'ci/build.yaml',
    text: `version: 1\nissuer: "${people.url}"\nmatch: { sub: ci@acme.dev, repository_id: "734201", run_id: { glob: "*" } }\ngrant: { audience: ${issuer}, scopes: [audit:read] }\n`,
  },
];

interface Deployment {
  readonly env: WorkerEnv;
  readonly request: (path: string, init?: RequestInit) => Promise<Response>;
}

/** A deployment with a state Durable Object of its own; `request` goes through a new isolate's broker, started now. */
async function deployment(settings: Partial<WorkerEnv> = {}, log: Logger = silentLogger): Promise<Deployment> {
  const env: WorkerEnv = {
    ...workerEnv,
    STATE: ownStateNamespace(),
    AUDIT: ownStateNamespace(workerEnv.AUDIT),
    KEYWAY_RESTORE_TOKEN: RESTORE_TOKEN,
    ...settings,
  };
  return isolate(env, log);
}

/** The deployment once restored: KEYWAY_RESTORE_TOKEN deleted (the runbook's step 4), so it serves again. */
const afterRestore = (d: Deployment): WorkerEnv => ({ ...d.env, KEYWAY_RESTORE_TOKEN: undefined });

async function isolate(env: WorkerEnv, log: Logger = silentLogger): Promise<Deployment> {
  const broker = await createWorkerBroker(env, policies, { log });
  return { env, request: async (path, init) => broker.app.fetch(new Request(`${issuer}${path}`, init), env, createExecutionContext()) };
}

async function exchange(
  d: Deployment,
  sub: string,
  scope: string,
  claims: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const now = Math.floor(Date.now() / 1000);
  const subject = await people.sign({ iss: people.url, aud: issuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID(), ...claims });
  const response = await d.request('/token', {
    method: 'POST',
    body: exchangeForm(subject, { audience: issuer, scope }),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function tokenFor(d: Deployment, sub: string, scope: string): Promise<string> {
  const { status, body } = await exchange(d, sub, scope);
  expect(status).toBe(200);
  return body['access_token'] as string;
}

const restore = (d: Deployment, body: string, token = RESTORE_TOKEN) =>
  d.request('/v1/backup/restore', { method: 'POST', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });

/** What a deployment holds, read from its storage: audit ids in order (shard by shard), kids, checkpoints, and whether every chain verifies. */
async function stateOf(d: Deployment) {
  const box = await SecretBox.fromMasterKeys(readMasterKeys(d.env) as MasterKeys);
  const state = await runInDurableObject(keywayState(d.env.STATE), async (_instance, storage) => {
    const db = durableObjectSql(storage.storage);
    return {
      // The keys this deployment's master key attests, as keyway audit verify trusts them.
      pinned: { keys: (await new SqliteKeyStore(db, box).vouchedKeys()).vouched.map((key) => key.publicJwk) },
      kids: db.all<{ kid: string; alg: string; state: string }>('SELECT kid, alg, state FROM signing_keys ORDER BY kid'),
      policyVersion: db.all<{ version: number }>('SELECT version FROM live_policy_set').map((row) => row.version),
      revocations: db.all<{ id: string }>('SELECT id FROM github_token_revocations').map((row) => row.id),
    };
  });
  const chains = [];
  for (let shard = 0; shard < DEFAULT_AUDIT_SHARDS; shard += 1) {
    chains.push(
      await runInDurableObject(auditShard(d.env.AUDIT, shard), async (_instance, storage) => {
        const db = durableObjectSql(storage.storage);
        return {
          ids: db.all<{ id: string }>('SELECT id FROM audit_events ORDER BY seq').map((row) => row.id),
          checkpoints: db.all<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY seq').map((row) => `${shard}:${row.seq}`),
          report: await verifyAuditLog(await sqliteAuditLogSource(db, { pinned: state.pinned })),
        };
      }),
    );
  }
  const { kids, policyVersion, revocations } = state;
  return {
    ids: chains.flatMap((chain) => chain.ids),
    checkpoints: chains.flatMap((chain) => chain.checkpoints),
    heads: chains.map((chain) => chain.report.head_hash),
    ok: chains.every((chain) => chain.report.ok),
    kids,
    policyVersion,
    revocations,
  };
}

/** The CI run of the source deployment's grant to ci@acme.dev. */
const CI_RUN = { repository_id: '734201', run_id: '4401' };

/** The grants of CI_RUN a job's end finds (the read revoke-ended-work-tokens.ts makes), over every shard: their record ids. */
async function grantsOfCiRun(d: Deployment): Promise<string[]> {
  const ids = [];
  for (let shard = 0; shard < DEFAULT_AUDIT_SHARDS; shard += 1) {
    const grants = await auditShard(d.env.AUDIT, shard).grantsOfRun(CI_RUN.repository_id, CI_RUN.run_id, Date.now());
    ids.push(...grants.map((grant) => grant.auditEventId));
  }
  return ids;
}

/** An export of a sharded deployment: the state's dump and each shard's. */
type ShardedExport = { state: StateDump; shards: StateDump[]; root_checkpoints?: RootCheckpoint[] };
type EditableDump = { schema_version: number; tables: Record<string, Record<string, unknown>[]> };

describe('export and restore of a Workers deployment (workerd, real state Durable Objects)', () => {
  let source: Deployment;
  let exported: string;
  let earlierToken: string;

  beforeAll(async () => {
    source = await deployment({ KEYWAY_RESTORE_TOKEN: undefined });
    earlierToken = await tokenFor(source, 'olga@acme.dev', 'audit:read');
    expect((await exchange(source, 'bob@acme.dev', 'backup:read')).status).toBe(400);
    expect((await exchange(source, 'ci@acme.dev', 'audit:read', CI_RUN)).status).toBe(200);
    // A checkpoint signed by the alarm, a live policy set pushed, a GitHub token awaiting revocation (sealed).
    await runDurableObjectAlarm(keywayState(source.env.STATE));
    await scheduledAuditUpkeep(source.env, Date.now(), silentLogger);
    await keywayState(source.env.STATE).saveLivePolicySet(policies, 'acme/policies@0123abc', Date.now());
    await keywayState(source.env.STATE).add({
      id: 'rev-1',
      sealedToken: 'v1.sealed-as-stored',
      tokenSha256: 'a'.repeat(64),
      apiUrl: 'https://api.github.com',
      installationId: 7,
      revokeAt: Date.now() + 3_600_000,
      githubExpiresAt: Date.now() + 3_600_000,
      repositoryId: '734201',
      runId: '42',
      checkRunId: '4242',
      runAttempt: 1,
      actorJob: { repositoryId: '734201', runId: '43', checkRunId: '4343', runAttempt: 1 },
      attempts: 0,
      nextAttemptAt: Date.now() + 3_600_000,
    });
    const response = await source.request('/v1/backup', { headers: { authorization: `Bearer ${await tokenFor(source, 'olga@acme.dev', 'backup:read')}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    exported = await response.text();
  });

  /** The export with the state's dump edited, or with `shard` given the first shard that holds records. */
  const edited = (edit: (dump: EditableDump) => void, part: 'state' | 'shard' = 'state'): string => {
    const exportedDump = JSON.parse(exported) as { state: EditableDump; shards: EditableDump[] };
    const shard = exportedDump.shards.find((dump) => (dump.tables['audit_events'] ?? []).length > 1);
    if (shard === undefined) throw new Error('a shard of the export holds two records');
    edit(part === 'state' ? exportedDump.state : shard);
    return JSON.stringify(exportedDump);
  };

  it('restores an export into a fresh deployment: every record, the checkpoints, keys, live policy set and revocations; verify passes', async () => {
    const before = await stateOf(source);
    expect(before.ids.length).toBeGreaterThanOrEqual(3);
    expect(before.checkpoints.length).toBeGreaterThan(0);
    const dump = JSON.parse(exported) as ShardedExport;
    expect(dump.state.schema_version).toBe(SCHEMA_VERSION);
    expect(dump.shards).toHaveLength(DEFAULT_AUDIT_SHARDS);
    // Private parts as stored: sealed, never a JWK in the clear, and no master key anywhere.
    expect(exported).not.toContain(workerEnv.KEYWAY_MASTER_KEY);
    for (const row of dump.state.tables['signing_keys'] ?? []) expect(String(row['private_jwk'])).not.toMatch(/^\{/);

    const target = await deployment();
    const response = await restore(target, exported);
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { restored: { records: number; records_without_mac?: unknown } };
    expect(answer.restored.records).toBe(before.ids.length);
    expect(answer.restored.records_without_mac).toBeUndefined();

    const after = await stateOf(target);
    expect(after.ok).toBe(true);
    expect(after.ids).toEqual(before.ids);
    expect(after.heads).toEqual(before.heads);
    expect(after.checkpoints).toEqual(before.checkpoints);
    expect(after.kids).toEqual(before.kids);
    expect(after.policyVersion).toEqual(before.policyVersion);
    expect(after.revocations).toEqual(['rev-1']);

    // A new isolate of the restored deployment: a token minted before the export verifies, and new ones are signed with the restored key.
    const served = await isolate(afterRestore(target));
    expect((await served.request('/v1/audit/events', { headers: { authorization: `Bearer ${earlierToken}` } })).status).toBe(200);
    const minted = await tokenFor(served, 'olga@acme.dev', 'audit:read');
    expect(decodeProtectedHeader(minted).kid).toBe(before.kids.find((key) => key.state === 'current' && key.alg === 'ES256')?.kid);
    const continued = await stateOf(target);
    expect(continued.ok).toBe(true);
    expect(continued.ids.filter((id) => before.ids.includes(id))).toEqual(before.ids);
    expect(continued.ids).toHaveLength(before.ids.length + 1);
  });

  it("derives the run grants and usage roll-up from the restored records, not the export's rows: none planted, none deleted", async () => {
    const grants = await grantsOfCiRun(source);
    expect(grants).toHaveLength(1);
    const shardOfGrant = (JSON.parse(exported) as ShardedExport).shards.findIndex((dump) =>
      (dump.tables['audit_events'] ?? []).some((row) => row['id'] === grants[0]),
    );
    const none = { issuer: null, tenant: null, repository: null, subject: null, policy_id: null, scopes: null, audiences: null };
    const groups = { ...none, github_permissions: null, github_repositories: null, decision: 'granted', reason: 'granted' };
    const planted = { ...groups, day: 1, grp: '["planted"]', count: 1_000, first: 86_400_000, last: 86_400_000 };
    const derivedOnly = JSON.parse(exported) as { shards: EditableDump[] };
    derivedOnly.shards.forEach((dump, index) => {
      // The grant's row taken out (a running job's token would outlive its end), one planted for another record (the end of
      // run 4401 would revoke a token it did not grant), and a roll-up row planted where no rolling up would ever look again.
      dump.tables['audit_run_grants'] = (dump.tables['audit_run_grants'] ?? []).filter((row) => row['audit_event_id'] !== grants[0]);
      const other = (dump.tables['audit_events'] ?? []).find((row) => row['id'] !== grants[0]);
      if (other !== undefined) {
        const row = { repository_id: CI_RUN.repository_id, run_id: CI_RUN.run_id, audit_event_id: other['id'], role: 'subject', jti: other['id'] };
        dump.tables['audit_run_grants']?.push({ ...row, issuer: people.url, issuer_kind: null, check_run_id: null, run_attempt: null, exp: 4_000_000_000 });
      }
      if (index !== shardOfGrant) return;
      dump.tables['audit_usage']?.push(planted);
      dump.tables['audit_usage_state'] = [{ slot: 1, seq: 1_000_000 }];
    });
    const target = await deployment();
    expect((await restore(target, JSON.stringify(derivedOnly))).status).toBe(200);
    expect(await grantsOfCiRun(target)).toEqual(grants);
    // Rolled up again from the records: the grant counted, the planted row gone.
    await auditShard(target.env.AUDIT, shardOfGrant).rollUpUsage();
    const rolled = await runInDurableObject(auditShard(target.env.AUDIT, shardOfGrant), (_instance, state) =>
      durableObjectSql(state.storage).all<{ grp: string }>('SELECT grp FROM audit_usage'),
    );
    expect(rolled.map((row) => row.grp)).not.toContain(planted.grp);
    expect(rolled.some((row) => row.grp.includes('"ci@acme.dev"'))).toBe(true);
  });

  it("names in its answer the records after a shard's checkpoints that carry no MAC, taken as written before keyway made MACs (records_without_mac)", async () => {
    const unmaced = JSON.parse(exported) as { state: EditableDump; shards: EditableDump[]; root_checkpoints: RootCheckpoint[] };
    const index = unmaced.shards.findIndex((dump) => (dump.tables['audit_events'] ?? []).length > 1);
    const dump = unmaced.shards[index];
    if (dump === undefined) throw new Error('a shard of the export holds two records');
    // As an older keyway's export would hold them: no MACs, no checkpoint that signs where they start, the migration's start at
    // the head, and root checkpoints over the heads alone.
    const records = dump.tables['audit_events'] ?? [];
    for (const row of records) row['mac'] = null;
    dump.tables['audit_checkpoints'] = [];
    for (const row of dump.tables['audit_mac_start'] ?? []) row['macs_after'] = records.length;
    const ring = await KeyRing.from(await stateStores(() => keywayState(source.env.STATE)).keys.listKeys());
    unmaced.root_checkpoints = await Promise.all(
      unmaced.root_checkpoints.map(({ time, heads }) =>
        signRootCheckpoint(
          auditStatementSigner(
            issuer,
            () => ring,
            () => Date.parse(time),
          ),
          heads,
        ),
      ),
    );
    const response = await restore(await deployment(), JSON.stringify(unmaced));
    expect(response.status).toBe(200);
    expect(((await response.json()) as { restored: { records_without_mac?: unknown } }).restored.records_without_mac).toEqual([
      { chain: String(index), first_seq: 1, last_seq: records.length },
    ]);
  });

  it('forgets what the Cron rounds remembered of the shards it restores into: a memory left over (shards emptied) does not fail every round after', async () => {
    const target = await deployment();
    // Left from before the shards were emptied (a replaced namespace, a point-in-time recovery): newer than anything restored.
    await keywayState(target.env.STATE).rememberSignedHeads({ '0': { seq: 1_000_000, hash: 'f'.repeat(64) } });
    expect((await restore(target, exported)).status).toBe(200);
    const failures: unknown[] = [];
    const log = { ...silentLogger, error: (message: string, fields?: Record<string, unknown>) => void failures.push({ message, ...fields }) };
    await scheduledAuditUpkeep(afterRestore(target), Date.now(), log);
    expect(failures).toEqual([]);
  });

  it("holds the first Cron round after a restore to where the root checkpoints sign a shard's MACs start: one whose checkpoints were deleted and start raised is not signed", async () => {
    const target = await deployment();
    expect((await restore(target, exported)).status).toBe(200);
    const roots = await keywayState(target.env.STATE).allRootCheckpoints();
    const index = (JSON.parse(exported) as ShardedExport).shards.findIndex((dump) => (dump.tables['audit_events'] ?? []).length > 1);
    // Whoever writes the restored shard before the first round (the restore forgot what the rounds remembered): its
    // checkpoints deleted, its own start raised past its records, every MAC taken out, a record appended without one.
    await runInDurableObject(auditShard(target.env.AUDIT, index), (_instance, state) => {
      const db = durableObjectSql(state.storage);
      for (const sql of ['DELETE FROM audit_checkpoints', 'UPDATE audit_mac_start SET macs_after = 1000000', 'UPDATE audit_events SET mac = NULL']) db.run(sql);
      appendForgedRecord(db);
    });
    const failures: unknown[] = [];
    const log = { ...silentLogger, error: (message: string, fields?: Record<string, unknown>) => void failures.push({ message, ...fields }) };
    await expect(scheduledAuditUpkeep(afterRestore(target), Date.now(), log)).rejects.toMatchObject(failedAuditRound(1, readAuditShards(target.env)));
    expect(failures).toEqual([
      {
        message: 'audit shard upkeep failed; no root checkpoint this round',
        failed: [
          {
            chain: String(index),
            error: 'ChainConflictError: record 1 carries no MAC, though the broker has MACed every record after 0: the broker did not append it',
          },
        ],
      },
    ]);
    expect(await auditShard(target.env.AUDIT, index).checkpoints(0, 10)).toEqual([]);
    expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual(roots);
  });

  it('holds the first Cron round after a restore to MACs from the first record of a shard the root checkpoints name empty: one given a record without a MAC and a raised start is not signed', async () => {
    const target = await deployment();
    expect((await restore(target, exported)).status).toBe(200);
    const roots = await keywayState(target.env.STATE).allRootCheckpoints();
    const index = (JSON.parse(exported) as ShardedExport).shards.findIndex((dump) => (dump.tables['audit_events'] ?? []).length === 0);
    expect(roots.at(-1)?.heads[String(index)]?.seq).toBe(0);
    // Whoever writes the shard before the first round: a record written without the master key, its start raised past it.
    await runInDurableObject(auditShard(target.env.AUDIT, index), async (_instance, state) => {
      const db = durableObjectSql(state.storage);
      await new SqliteAuditStore(db).append(auditEvent());
      db.run('UPDATE audit_mac_start SET macs_after = 1000000');
    });
    const failures: unknown[] = [];
    const log = { ...silentLogger, error: (message: string, fields?: Record<string, unknown>) => void failures.push({ message, ...fields }) };
    await expect(scheduledAuditUpkeep(afterRestore(target), Date.now(), log)).rejects.toMatchObject(failedAuditRound(1, readAuditShards(target.env)));
    expect(failures).toEqual([
      {
        message: 'audit shard upkeep failed; no root checkpoint this round',
        failed: [
          {
            chain: String(index),
            error: 'ChainConflictError: record 1 carries no MAC, though the broker has MACed every record after 0: the broker did not append it',
          },
        ],
      },
    ]);
    expect(await auditShard(target.env.AUDIT, index).checkpoints(0, 10)).toEqual([]);
    expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual(roots);
  });

  it("signs where MACs start in every shard in a fresh deployment's first root checkpoint, of empty shards: a shard then given a record without a MAC and a raised start is not signed", async () => {
    const target = await deployment();
    const env = afterRestore(target);
    await scheduledAuditUpkeep(env, Date.now(), silentLogger);
    const roots = await keywayState(target.env.STATE).allRootCheckpoints();
    expect(roots.map((root) => root.macs_after)).toEqual([Object.fromEntries(Array.from({ length: DEFAULT_AUDIT_SHARDS }, (_, shard) => [String(shard), 0]))]);
    // Whoever writes a shard before the next round: a record written without the master key, its start raised past it.
    await runInDurableObject(auditShard(target.env.AUDIT, 1), async (_instance, state) => {
      const db = durableObjectSql(state.storage);
      await new SqliteAuditStore(db).append(auditEvent());
      db.run('UPDATE audit_mac_start SET macs_after = 1000000');
    });
    const failures: unknown[] = [];
    const log = { ...silentLogger, error: (message: string, fields?: Record<string, unknown>) => void failures.push({ message, ...fields }) };
    await expect(scheduledAuditUpkeep(env, Date.now() + 1000, log)).rejects.toMatchObject(failedAuditRound(1, DEFAULT_AUDIT_SHARDS));
    expect(failures).toEqual([
      {
        message: 'audit shard upkeep failed; no root checkpoint this round',
        failed: [
          { chain: '1', error: 'ChainConflictError: record 1 carries no MAC, though the broker has MACed every record after 0: the broker did not append it' },
        ],
      },
    ]);
    expect(await auditShard(target.env.AUDIT, 1).checkpoints(0, 10)).toEqual([]);
    expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual(roots);
  });

  it('exports the root checkpoints; verify reads the export file: intact, then names the shard and record of an edit', async () => {
    const dump = JSON.parse(exported) as ShardedExport;
    const box = await SecretBox.fromMasterKeys(readMasterKeys(source.env) as MasterKeys);
    const roots = await keywayState(source.env.STATE).allRootCheckpoints();
    expect(roots.length).toBeGreaterThan(0);
    expect(dump.root_checkpoints?.map((root) => root.jws)).toEqual(roots.map((root) => root.jws));
    const verified = async (text: string) => {
      const log = await exportedAuditLog(text, { box });
      if (!('chains' in log)) throw new Error('a sharded export reads as a sharded log');
      return verifyShardedAuditLog(log);
    };
    const intact = await verified(exported);
    expect(intact.problem).toBeUndefined();
    expect(intact.ok).toBe(true);
    expect(intact.root_checkpoints).toBe(roots.length);
    expect(intact.chains.map((chain) => chain.shard)).toEqual(Array.from({ length: DEFAULT_AUDIT_SHARDS }, (_, shard) => String(shard)));
    expect(intact.latest_root?.chains).toBe(DEFAULT_AUDIT_SHARDS);

    // One record of one shard edited in the file, its chain link left as it was.
    const edited = JSON.parse(exported) as { shards: EditableDump[] };
    const shard = edited.shards.findIndex((each) => (each.tables['audit_events'] ?? []).length > 0);
    const record = edited.shards[shard]?.tables['audit_events']?.[0];
    if (record === undefined) throw new Error('a shard of the export holds a record');
    record['event'] = String(record['event']).replace('"decision":"', '"decision":"x');
    const tampered = await verified(JSON.stringify(edited));
    expect(tampered.ok).toBe(false);
    expect(tampered.problem).toMatchObject({ kind: 'edited', shard: String(shard), seq: Number(record['seq']) });
    expect(tampered.chains.filter((chain) => !chain.ok).map((chain) => chain.shard)).toEqual([String(shard)]);
  });

  it('restores the root checkpoints with the export, and refuses an export whose root checkpoint was forged', async () => {
    const dump = JSON.parse(exported) as ShardedExport;
    const target = await deployment();
    // A fresh deployment's Cron round signs a root checkpoint of its empty chains, with the key the restore replaces.
    await scheduledAuditUpkeep(target.env, Date.now(), silentLogger);
    expect(await keywayState(target.env.STATE).allRootCheckpoints()).toHaveLength(1);
    expect((await restore(target, exported)).status).toBe(200);
    expect((await keywayState(target.env.STATE).allRootCheckpoints()).map((root) => root.jws)).toEqual(dump.root_checkpoints?.map((root) => root.jws));

    const forged = JSON.parse(exported) as { root_checkpoints: { jws: string }[] };
    const [root] = forged.root_checkpoints;
    if (root === undefined) throw new Error('the export holds a root checkpoint');
    const [header, payload, signature] = root.jws.split('.');
    const claims = JSON.parse(atob(String(payload).replaceAll('-', '+').replaceAll('_', '/'))) as { heads: Record<string, { seq: number }> };
    for (const head of Object.values(claims.heads)) head.seq += 1;
    root.jws = `${header}.${btoa(JSON.stringify(claims)).replaceAll('+', '-').replaceAll('/', '_').replaceAll('=', '')}.${signature}`;
    const refused = await deployment();
    const response = await restore(refused, JSON.stringify(forged));
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; problem: string; error_description: string };
    expect(body).toMatchObject({ error: 'invalid_request', problem: 'audit_log_invalid' });
    expect(body.error_description).toContain('root_checkpoint_invalid');
    expect((await stateOf(refused)).ids).toEqual([]);
    expect(await keywayState(refused.env.STATE).allRootCheckpoints()).toEqual([]);
  });

  it('exports only for a keyway token with backup:read: none, a wrong one, audit:read or the restore token get no data', async () => {
    const none = await source.request('/v1/backup');
    expect(none.status).toBe(401);
    expect((await none.json()) as object).toEqual({
      error: 'invalid_token',
      error_description: 'a Bearer access token is required',
      audit_event_id: expect.any(String),
    });
    const auditor = await source.request('/v1/backup', { headers: { authorization: `Bearer ${await tokenFor(source, 'bob@acme.dev', 'audit:read')}` } });
    expect(auditor.status).toBe(403);
    expect(((await auditor.json()) as { error: string }).error).toBe('insufficient_scope');
    const restoreToken = await source.request('/v1/backup', { headers: { authorization: `Bearer ${RESTORE_TOKEN}` } });
    expect(restoreToken.status).toBe(401);
    expect(await restoreToken.text()).not.toContain('audit_events');
  });

  it("serves nothing but the restore while KEYWAY_RESTORE_TOKEN is set: a stranger's request meanwhile writes no record, so the deployment stays fresh", async () => {
    const target = await deployment();
    const before = await stateOf(target);
    const stranger = await target.request('/token', {
      method: 'POST',
      body: exchangeForm('not-a-jwt'),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(stranger.status).toBe(503);
    expect(await stranger.json()).toEqual({
      error: 'temporarily_unavailable',
      error_description:
        'this deployment is being restored: while KEYWAY_RESTORE_TOKEN is set it answers only POST /v1/backup/restore (delete the secret once restored)',
    });
    for (const path of ['/.well-known/jwks.json', '/v1/audit/root-checkpoints', '/v1/backup']) expect((await target.request(path)).status).toBe(503);
    expect(await stateOf(target)).toEqual(before);
    expect((await restore(target, exported)).status).toBe(200);
  });

  it('runs no Cron round while KEYWAY_RESTORE_TOKEN is set: one overlapping the restore would sign restored shards with the key it replaces', async () => {
    const target = await deployment();
    const before = await stateOf(target);
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '*/5 * * * *' }), target.env);
    expect(await keywayState(target.env.STATE).rootCheckpoints('', 10)).toEqual([]);
    expect(await stateOf(target)).toEqual(before);
    expect((await restore(target, exported)).status).toBe(200);
  });

  describe('a restore refused writes nothing', () => {
    const refusedLeavesFresh = async (target: Deployment, response: Response, status: number, problem: string | undefined, error = 'invalid_request') => {
      const before = await stateOf(target);
      expect(response.status).toBe(status);
      const body = (await response.json()) as { error: string; error_description?: string; problem?: string; restored?: unknown };
      expect(body.error).toBe(error);
      expect(body.problem).toBe(problem);
      expect(body.restored).toBeUndefined();
      const after = await stateOf(target);
      expect(after.ids).toEqual([]);
      expect(after.kids).toEqual(before.kids);
      expect(after.kids.map((key) => key.kid)).not.toContain((JSON.parse(exported) as ShardedExport).state.tables['signing_keys']?.[0]?.['kid']);
      expect(after.policyVersion).toEqual([]);
      return body.error_description;
    };

    it('without the restore token, with a wrong one, or when KEYWAY_RESTORE_TOKEN is unset', async () => {
      const lines: string[] = [];
      const target = await deployment({}, jsonLogger({}, { write: (line) => lines.push(line) }));
      const guess = `${RESTORE_TOKEN}x`;
      await refusedLeavesFresh(
        target,
        await target.request('/v1/backup/restore', { method: 'POST', body: exported, headers: { 'cf-connecting-ip': '203.0.113.7' } }),
        401,
        undefined,
        'invalid_token',
      );
      await refusedLeavesFresh(target, await restore(target, exported, guess), 401, undefined, 'invalid_token');
      // No record (the deployment stays fresh), but the operator sees each attempt, and never what was presented.
      const refusals = lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line['message'] === 'state restore refused: not the restore token');
      expect(refusals.map(({ level, credential, client_ip }) => ({ level, credential, client_ip }))).toEqual([
        { level: 'warn', credential: 'none', client_ip: '203.0.113.7' },
        { level: 'warn', credential: 'wrong', client_ip: null },
      ]);
      expect(lines.join('\n')).not.toContain(guess);
      const unset = await deployment({ KEYWAY_RESTORE_TOKEN: undefined });
      await refusedLeavesFresh(unset, await restore(unset, exported), 403, undefined, 'access_denied');
    });

    it('when KEYWAY_RESTORE_TOKEN is too short to resist guessing, even presented right', async () => {
      const guessable = 'a'.repeat(31);
      const short = await deployment({ KEYWAY_RESTORE_TOKEN: guessable });
      expect(await refusedLeavesFresh(short, await restore(short, exported, guessable), 403, undefined, 'access_denied')).toContain(
        'shorter than 32 characters',
      );
    });

    it('into a deployment that has served an exchange (not fresh)', async () => {
      const used = await deployment({ KEYWAY_RESTORE_TOKEN: undefined });
      await tokenFor(used, 'olga@acme.dev', 'audit:read');
      const before = await stateOf(used);
      const response = await restore(await isolate({ ...used.env, KEYWAY_RESTORE_TOKEN: RESTORE_TOKEN }), exported);
      expect(response.status).toBe(409);
      expect(((await response.json()) as { problem: string }).problem).toBe('not_fresh');
      expect(await stateOf(used)).toEqual(before);
    });

    it('an export with a record changed: the chain fails', async () => {
      const target = await deployment();
      const tampered = edited((dump) => {
        const record = dump.tables['audit_events']?.[1];
        if (record !== undefined) record['event'] = String(record['event']).replace('"decision":"', '"decision":"x');
      }, 'shard');
      expect(tampered).not.toBe(exported);
      await refusedLeavesFresh(target, await restore(target, tampered), 400, 'audit_log_invalid');
    });

    it("an export with a record appended to a shard's tail, chained right but without the MAC of the master key: the broker did not append it", async () => {
      const target = await deployment();
      let seq = 0;
      const tampered = edited((dump) => {
        const records = dump.tables['audit_events'] ?? [];
        const head = records.reduce((newest, record) => (Number(record['seq']) > Number(newest['seq']) ? record : newest));
        const forged = { ...(JSON.parse(String(head['event'])) as AuditEvent), id: '01KAQN6Q00B3GQ1D5M0XW8T9ZB', detail: 'forged' };
        const { text, index } = canonicalEvent(forged);
        seq = Number(head['seq']) + 1;
        records.push({ ...head, ...index, seq, prev_hash: head['hash'], hash: chainHash(String(head['hash']), forged), event: text, mac: null });
      }, 'shard');
      expect(await refusedLeavesFresh(target, await restore(target, tampered), 400, 'audit_log_invalid')).toContain(
        `audit record ${seq} in the export carries no MAC, though the broker has MACed every record after 0: the broker did not append it`,
      );
    });

    it("an export with one shard's records put in place of another's, that shard's checkpoints taken out: their MACs name the shard they were appended to", async () => {
      const target = await deployment();
      const moved = JSON.parse(exported) as { state: EditableDump; shards: EditableDump[] };
      const from = moved.shards.findIndex((dump) => (dump.tables['audit_events'] ?? []).length > 1);
      const into = moved.shards.findIndex((_dump, index) => index !== from);
      const [source, replaced] = [moved.shards[from], moved.shards[into]];
      if (source === undefined || replaced === undefined) throw new Error('the export holds two shards, one with records');
      replaced.tables['audit_events'] = source.tables['audit_events'] ?? [];
      replaced.tables['audit_checkpoints'] = [];
      expect(await refusedLeavesFresh(target, await restore(target, JSON.stringify(moved)), 400, 'audit_log_invalid')).toBe(
        `audit shard ${into}: audit record 1 in the export carries a MAC the master key did not make: the broker did not append it`,
      );
    });

    /** A shard of the export edited by `edit`: its records (a forged one appended without a MAC), the MAC start it stores. */
    const forgedTail = (edit: (shard: EditableDump, forged: number) => void): { text: string; forged: number } => {
      let forged = 0;
      const text = edited((dump) => {
        const records = dump.tables['audit_events'] ?? [];
        const head = records.reduce((newest, record) => (Number(record['seq']) > Number(newest['seq']) ? record : newest));
        const event = { ...(JSON.parse(String(head['event'])) as AuditEvent), id: '01KAQN6Q00B3GQ1D5M0XW8T9ZC', detail: 'forged' };
        const { text, index } = canonicalEvent(event);
        forged = Number(head['seq']) + 1;
        records.push({ ...head, ...index, seq: forged, prev_hash: head['hash'], hash: chainHash(String(head['hash']), event), event: text, mac: null });
        for (const row of dump.tables['audit_mac_start'] ?? []) row['macs_after'] = 1_000_000;
        edit(dump, forged);
      }, 'shard');
      return { text, forged };
    };

    it("an export whose stored MAC start was moved up, the MACs taken off every record after a shard's newest checkpoint: the start that checkpoint signed counts", async () => {
      const target = await deployment();
      let first = 0;
      const { text } = forgedTail((dump) => {
        const signed = Math.max(...(dump.tables['audit_checkpoints'] ?? []).map((row) => Number(row['seq'])));
        for (const row of dump.tables['audit_events'] ?? []) if (Number(row['seq']) > signed) row['mac'] = null;
        first = signed + 1;
      });
      expect(await refusedLeavesFresh(target, await restore(target, text), 400, 'audit_log_invalid')).toContain(
        `audit record ${first} in the export carries no MAC, though the broker has MACed every record after 0: the broker did not append it`,
      );
    });

    it("an export whose records are out of order, a shard's checkpoints taken out and its stored MAC start moved up: a record without a MAC after one with it is refused", async () => {
      const target = await deployment();
      const { text, forged } = forgedTail((dump) => {
        dump.tables['audit_checkpoints'] = [];
        dump.tables['audit_events']?.reverse();
      });
      expect(await refusedLeavesFresh(target, await restore(target, text), 400, 'audit_log_invalid')).toContain(
        `audit record ${forged} in the export carries no MAC, though the broker has MACed every record after 0: the broker did not append it`,
      );
    });

    it("an export whose shard's checkpoints were taken out, its stored MAC start moved up past records stripped of their MACs and one appended: the start the root checkpoints sign counts", async () => {
      const target = await deployment();
      const index = (JSON.parse(exported) as ShardedExport).shards.findIndex((dump) => (dump.tables['audit_events'] ?? []).length > 1);
      const { text } = forgedTail((dump) => {
        dump.tables['audit_checkpoints'] = [];
        for (const row of dump.tables['audit_events'] ?? []) row['mac'] = null;
      });
      expect(await refusedLeavesFresh(target, await restore(target, text), 400, 'audit_log_invalid')).toBe(
        `audit shard ${index}: audit record 1 in the export carries no MAC, though the root checkpoints sign that the broker has ` +
          'MACed every record of the shard after 0: the broker did not append it',
      );
      expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual([]);
    });

    it("with no record MAC keys to check a shard's export with, refused, not restored unchecked: its records after the newest checkpoint need them", async () => {
      const { text } = forgedTail(() => undefined);
      const dump = JSON.parse(text) as { state: StateDump; shards: StateDump[] };
      const index = dump.shards.findIndex((shard) => (shard.tables['audit_events'] ?? []).some((row) => row['mac'] === null));
      const box = await SecretBox.fromMasterKeys(readMasterKeys(workerEnv) as MasterKeys);
      const options = { signingKeys: dump.state.tables['signing_keys'] ?? [], chain: String(index), macs: undefined, write: false };
      const refusal = await runInDurableObject(auditShard(ownStateNamespace(workerEnv.AUDIT), index), async (_instance, state) =>
        restoreDump(durableObjectSql(state.storage), dump.shards[index] as StateDump, box, options).then(
          () => undefined,
          (error: unknown) => (error instanceof StateRestoreError ? { problem: error.problem, message: error.message } : error),
        ),
      );
      expect(refusal).toEqual({ problem: 'audit_log_invalid', message: "no master key to check the audit records' MACs with" });
    });

    it('an export with a row its table cannot hold (a revocation given twice): refused before any object is written, not a 500', async () => {
      const target = await deployment();
      const twice = edited((dump) => {
        const [row] = dump.tables['github_token_revocations'] ?? [];
        if (row === undefined) throw new Error('the export holds a revocation');
        dump.tables['github_token_revocations'] = [row, { ...row }];
      });
      // The state is written after every shard: a row it cannot hold, found only then, would leave the shards restored.
      expect(await refusedLeavesFresh(target, await restore(target, twice), 400, 'malformed')).toContain('github_token_revocations');
      expect((await restore(target, exported)).status).toBe(200);
    });

    it('an export whose root checkpoints were taken out, with a shard cut short: its records are held to none', async () => {
      const stripped = JSON.parse(
        edited((dump) => {
          const records = dump.tables['audit_events'] ?? [];
          dump.tables['audit_events'] = records.slice(0, 1);
          dump.tables['audit_checkpoints'] = (dump.tables['audit_checkpoints'] ?? []).filter((row) => Number(row['seq']) <= 1);
        }, 'shard'),
      ) as ShardedExport;
      delete stripped.root_checkpoints;
      const target = await deployment();
      const why = await refusedLeavesFresh(target, await restore(target, JSON.stringify(stripped)), 400, 'audit_log_invalid');
      expect(why).toContain('the export holds audit records but no root checkpoint');
      expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual([]);
    });

    it('an export with a chain no root checkpoint names: a shard past the count whose records are older than the newest root', async () => {
      const extra = JSON.parse(exported) as ShardedExport;
      const copied = extra.shards.find((dump) => (dump.tables['audit_events'] ?? []).length > 0);
      if (copied === undefined) throw new Error('a shard of the export holds records');
      const target = await deployment({ KEYWAY_AUDIT_SHARDS: String(DEFAULT_AUDIT_SHARDS + 1) });
      // With its checkpoints, the copy is refused before any root is read: each names the shard it was signed for.
      const source = extra.shards.indexOf(copied);
      const named = await refusedLeavesFresh(
        target,
        await restore(target, JSON.stringify({ ...extra, shards: [...extra.shards, copied] })),
        400,
        'audit_log_invalid',
      );
      expect(named).toContain(`audit shard ${DEFAULT_AUDIT_SHARDS}: the audit log in the export does not verify (checkpoint_invalid at seq `);
      expect(named).toContain(`the checkpoint is signed for chain ${source}, but this is chain ${DEFAULT_AUDIT_SHARDS}`);
      // Without them, its records' MACs still name the shard they were appended to.
      const records = copied.tables['audit_events'] ?? [];
      const uncheckpointed = { ...copied, tables: { ...copied.tables, audit_checkpoints: [] } };
      expect(
        await refusedLeavesFresh(
          target,
          await restore(target, JSON.stringify({ ...extra, shards: [...extra.shards, uncheckpointed] })),
          400,
          'audit_log_invalid',
        ),
      ).toBe(`audit shard ${DEFAULT_AUDIT_SHARDS}: audit record 1 in the export carries a MAC the master key did not make: the broker did not append it`);
      // MACed as that shard's own, as if the broker had appended them there, they are refused by the root checkpoints.
      const macs = new RecordMacs(recordMacKeys(readMasterKeys(workerEnv) as MasterKeys), { chain: String(DEFAULT_AUDIT_SHARDS) });
      const remaced = records.map((row) => ({ ...row, mac: macs.make({ seq: Number(row['seq']), hash: String(row['hash']) }) }));
      extra.shards.push({ ...uncheckpointed, tables: { ...uncheckpointed.tables, audit_events: remaced } });
      const why = await refusedLeavesFresh(target, await restore(target, JSON.stringify(extra)), 400, 'audit_log_invalid');
      expect(why).toContain(`(root_chain_unnamed in shard ${DEFAULT_AUDIT_SHARDS} at seq 1)`);
    });

    it('an export with a shard past the count that no root checkpoint names, its records written without the master key and its stored MAC start raised past them', async () => {
      const extra = JSON.parse(exported) as ShardedExport;
      const copied = extra.shards.find((dump) => (dump.tables['audit_events'] ?? []).length > 0);
      if (copied === undefined) throw new Error('a shard of the export holds records');
      const [newest] = (extra.root_checkpoints ?? []).toSorted((a, b) => Date.parse(b.time) - Date.parse(a.time));
      if (newest === undefined) throw new Error('the export holds a root checkpoint');
      // Chained right from the genesis, dated after the newest root (as a shard added since holds), with no MAC.
      let prev = '0'.repeat(64);
      const records = (copied.tables['audit_events'] ?? []).map((row, index) => {
        const event = {
          ...(JSON.parse(String(row['event'])) as AuditEvent),
          id: `01KAQN6Q00B3GQ1D5M0XW8T9${String(index).padStart(2, '0')}`,
          time: new Date(Date.parse(newest.time) + 60_000 + index).toISOString(),
          detail: 'forged',
        };
        const { text, index: columns } = canonicalEvent(event);
        const hash = chainHash(prev, event);
        const forged = { ...row, ...columns, seq: index + 1, prev_hash: prev, hash, event: text, mac: null };
        prev = hash;
        return forged;
      });
      const tables = { ...copied.tables, audit_events: records, audit_checkpoints: [], audit_mac_start: [{ slot: 1, macs_after: 1_000_000 }] };
      extra.shards.push({ ...copied, tables });
      const target = await deployment({ KEYWAY_AUDIT_SHARDS: String(DEFAULT_AUDIT_SHARDS + 1) });
      expect(await refusedLeavesFresh(target, await restore(target, JSON.stringify(extra)), 400, 'audit_log_invalid')).toBe(
        `audit shard ${DEFAULT_AUDIT_SHARDS}: audit record 1 in the export carries no MAC, though the root checkpoints sign that the broker has ` +
          'MACed every record of the shard after 0: the broker did not append it',
      );
      expect(await keywayState(target.env.STATE).allRootCheckpoints()).toEqual([]);
    });

    it('an export with a shard no record came to since keyway made MACs, that the root checkpoints name but sign no start of, a record appended to it without a MAC and its stored start raised', async () => {
      const idle = JSON.parse(exported) as { state: EditableDump; shards: EditableDump[]; root_checkpoints: RootCheckpoint[] };
      const index = idle.shards.findIndex((dump) => (dump.tables['audit_checkpoints'] ?? []).length > 0);
      const dump = idle.shards[index];
      const [newest] = (dump?.tables['audit_checkpoints'] ?? []).toSorted((a, b) => Number(b['seq']) - Number(a['seq']));
      if (dump === undefined || newest === undefined) throw new Error('a shard of the export holds a checkpoint');
      // The records up to the head its checkpoint and the root checkpoints signed: none came to it since.
      const records = (dump.tables['audit_events'] ?? []).filter((row) => Number(row['seq']) <= Number(newest['seq']));
      dump.tables['audit_events'] = records;
      const last = records.at(-1);
      if (last === undefined) throw new Error('the shard holds the record its checkpoint signs');
      const chain = String(index);
      // As an older keyway left the shard, and no record came to it since the upgrade: no MACs, its head signed without a
      // start, the migration's start at the head; the root checkpoints sign the other shards' starts, and none of its own.
      const ring = await KeyRing.from(await stateStores(() => keywayState(source.env.STATE)).keys.listKeys());
      for (const row of records) row['mac'] = null;
      const signed = await checkpointSigner(
        issuer,
        () => ring,
        () => Number(newest['time']),
        chain,
      )({ seq: Number(last['seq']), hash: String(last['hash']) });
      dump.tables['audit_checkpoints'] = [{ ...newest, jws: signed.jws }];
      dump.tables['audit_mac_start'] = [{ slot: 1, macs_after: records.length }];
      idle.root_checkpoints = await Promise.all(
        idle.root_checkpoints.map(({ time, heads, macs_after }) =>
          signRootCheckpoint(
            auditStatementSigner(
              issuer,
              () => ring,
              () => Date.parse(time),
            ),
            heads,
            Object.fromEntries(Object.entries(macs_after ?? {}).filter(([name]) => name !== chain)),
          ),
        ),
      );
      expect(idle.root_checkpoints.every((root) => root.macs_after !== undefined && (root.heads[chain]?.seq ?? 0) > 0)).toBe(true);
      expect((await restore(await deployment(), JSON.stringify(idle))).status).toBe(200);

      // Whoever writes the export: a record chained right after the head, without a MAC, and the start raised past it.
      const event = { ...(JSON.parse(String(last['event'])) as AuditEvent), id: '01KAQN6Q00B3GQ1D5M0XW8T9ZZ', detail: 'forged' };
      const { text, index: columns } = canonicalEvent(event);
      const hash = chainHash(String(last['hash']), event);
      records.push({ ...last, ...columns, seq: Number(last['seq']) + 1, prev_hash: last['hash'], hash, event: text, mac: null });
      dump.tables['audit_mac_start'] = [{ slot: 1, macs_after: 1_000_000 }];
      const target = await deployment();
      expect(await refusedLeavesFresh(target, await restore(target, JSON.stringify(idle)), 400, 'audit_log_invalid')).toBe(
        `audit shard ${chain}: audit record ${records.length} in the export carries no MAC, though the root checkpoints sign that the broker has ` +
          `MACed every record of the shard after ${records.length - 1}: the broker did not append it`,
      );
    });

    it('with root checkpoints kept apart (a multipart form): an export older than them is refused, one that agrees is restored', async () => {
      const origin = await deployment({ KEYWAY_RESTORE_TOKEN: undefined });
      const backup = async () =>
        (await origin.request('/v1/backup', { headers: { authorization: `Bearer ${await tokenFor(origin, 'olga@acme.dev', 'backup:read')}` } })).text();
      await tokenFor(origin, 'olga@acme.dev', 'audit:read');
      await scheduledAuditUpkeep(origin.env, Date.now(), silentLogger);
      const older = await backup();
      await tokenFor(origin, 'olga@acme.dev', 'audit:read');
      expect(await scheduledAuditUpkeep(origin.env, Date.now(), silentLogger)).toBeDefined();
      // What a witness kept apart: the public GET /v1/audit/root-checkpoints answer.
      const kept = await (await origin.request('/v1/audit/root-checkpoints')).text();
      expect((JSON.parse(kept) as { root_checkpoints: unknown[] }).root_checkpoints).toHaveLength(2);
      const form = (text: string | undefined, roots: string) => {
        const body = new FormData();
        if (text !== undefined) body.append('export', new Blob([text], { type: 'application/json' }), 'keyway-state.json');
        body.append('roots', new Blob([roots], { type: 'application/json' }), 'kept-roots.json');
        return body;
      };
      const restoreWith = (d: Deployment, body: FormData) =>
        d.request('/v1/backup/restore', { method: 'POST', body, headers: { authorization: `Bearer ${RESTORE_TOKEN}` } });

      const target = await deployment();
      const why = await refusedLeavesFresh(target, await restoreWith(target, form(older, kept)), 400, 'audit_log_invalid');
      expect(why).toMatch(/\(records_missing in shard \d+ at seq \d+\)/);
      // Only the newest root checkpoint taken out of an export that holds every record: rolled back.
      const trimmed = JSON.parse(await backup()) as ShardedExport;
      const whole = JSON.stringify(trimmed);
      trimmed.root_checkpoints = trimmed.root_checkpoints?.slice(0, 1);
      expect(await refusedLeavesFresh(target, await restoreWith(target, form(JSON.stringify(trimmed), kept)), 400, 'audit_log_invalid')).toContain(
        '(root_checkpoints_rolled_back)',
      );
      expect(await refusedLeavesFresh(target, await restoreWith(target, form(whole, 'not json')), 400, 'malformed')).toContain('the kept root checkpoints');
      expect(await refusedLeavesFresh(target, await restoreWith(target, form(undefined, kept)), 400, 'malformed')).toContain('`export` part');
      // Two witnesses in two `roots` parts, the second holding only the oldest root: the form is refused, never the first dropped
      // (which would let the older export through), and two `export` parts are as ambiguous.
      const oldest = JSON.stringify({ root_checkpoints: (JSON.parse(kept) as { root_checkpoints: unknown[] }).root_checkpoints.slice(0, 1) });
      const twoWitnesses = form(older, kept);
      twoWitnesses.append('roots', new Blob([oldest], { type: 'application/json' }), 'oldest-root.json');
      expect(await refusedLeavesFresh(target, await restoreWith(target, twoWitnesses), 400, 'malformed')).toContain('one `roots` part');
      // A misspelt part (`root`) is no witness the restore could skip unseen: refused, not ignored.
      const misspelt = new FormData();
      misspelt.append('export', new Blob([older], { type: 'application/json' }), 'keyway-state.json');
      misspelt.append('root', new Blob([kept], { type: 'application/json' }), 'kept-roots.json');
      expect(await refusedLeavesFresh(target, await restoreWith(target, misspelt), 400, 'malformed')).toContain("not one named 'root'");
      const twoExports = form(whole, kept);
      twoExports.append('export', new Blob([whole], { type: 'application/json' }), 'again.json');
      expect(await refusedLeavesFresh(target, await restoreWith(target, twoExports), 400, 'malformed')).toContain('one `export` part');

      const restored = await restoreWith(target, form(whole, kept));
      expect(restored.status).toBe(200);
      expect((await stateOf(target)).ok).toBe(true);

      // The same witness held to a live broker (audit verify --url --roots): one restored from the older export is behind it.
      const rolled = await deployment();
      expect((await restore(rolled, older)).status).toBe(200);
      const served = await isolate(afterRestore(rolled));
      // A token the origin minted: the restored deployment has its keys, and verifying it appends nothing there.
      const auditor = await tokenFor(origin, 'olga@acme.dev', 'audit:read');
      const live = async () => {
        const log = await remoteAuditLog((path, params, authorized = true) =>
          served.request(`${path}${params === undefined ? '' : `?${params}`}`, authorized ? { headers: { authorization: `Bearer ${auditor}` } } : {}),
        );
        if (!('chains' in log)) throw new Error('a Workers deployment lists its shards');
        return log;
      };
      expect(await verifyShardedAuditLog(await live())).toMatchObject({ ok: true });
      const held = await verifyShardedAuditLog({ ...(await live()), kept: keptRootCheckpoints(kept) });
      expect(held).toMatchObject({ ok: false, kept_root_checkpoints: 2, problem: { kind: 'records_missing', seq: 3 } });
    });

    it('an export carrying a key of its own that re-signs a checkpoint: nothing vouches for it', async () => {
      // Write access to an export, not the master key: a removed key (no private part to check) and a checkpoint it signed.
      const planted = await generateSigningKey(Date.now());
      const forged = JSON.parse(exported) as { state: EditableDump; shards: EditableDump[] };
      const [model] = forged.state.tables['signing_keys'] ?? [];
      const [checkpoint] = forged.shards.flatMap((shard) => shard.tables['audit_checkpoints'] ?? []);
      if (model === undefined || checkpoint === undefined) throw new Error('the export holds a key and a checkpoint');
      forged.state.tables['signing_keys']?.push({
        ...Object.fromEntries(Object.keys(model).map((column) => [column, null])),
        kid: planted.kid,
        alg: 'ES256',
        state: 'removed',
        created_at: planted.createdAt,
        removed_at: planted.createdAt,
        public_jwk: JSON.stringify(planted.publicJwk),
      });
      const ring = await KeyRing.from([planted]);
      const signed = checkpointSigner(issuer, () => ring, Date.now);
      checkpoint['jws'] = (await signed({ seq: Number(checkpoint['seq']), hash: String(checkpoint['hash']) })).jws;
      const target = await deployment();
      await refusedLeavesFresh(target, await restore(target, JSON.stringify(forged)), 400, 'audit_log_invalid');
    });

    // The restored deployment serves the live set as restored: whoever could edit the export must not choose it.
    it('an export whose live policy set was edited under its attestation, or stripped of it: the master key did not attest it', async () => {
      const liveSet = (dump: EditableDump) => {
        const [row] = dump.tables['live_policy_set'] ?? [];
        expect(row?.['attestation']).toBeTypeOf('string');
        return row!;
      };
      const planted = edited((dump) => {
        const row = liveSet(dump);
        row['files'] = String(row['files']).replace('version: 1', 'version: 1\n# planted');
      });
      const stripped = edited((dump) => {
        liveSet(dump)['attestation'] = null;
      });
      for (const text of [planted, stripped]) {
        const target = await deployment();
        await refusedLeavesFresh(target, await restore(target, text), 400, 'live_policy_set_unvouched');
      }
    });

    it("with keys sealed under another master key than this deployment's: they do not open", async () => {
      // The state object reads its master key from the Worker's secrets, which a test cannot vary per object: the export
      // carries instead what one from a deployment with another master key carries, its keys sealed under that key.
      const other = await SecretBox.fromMasterKeys(
        readMasterKeys({ KEYWAY_MASTER_KEY: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))) }) as MasterKeys,
      );
      const resealed = JSON.parse(exported) as { state: EditableDump };
      for (const row of resealed.state.tables['signing_keys'] ?? []) {
        const key = await generateSigningKey(Date.now());
        if (row['private_jwk'] !== null) row['private_jwk'] = await other.seal(JSON.stringify(key.privateJwk), SIGNING_KEY_PURPOSE, String(row['kid']));
      }
      const target = await deployment();
      await refusedLeavesFresh(target, await restore(target, JSON.stringify(resealed)), 400, 'keys_do_not_open');
    });

    // The dump's schema takes a string or a number in any column: a value of the other type where the checks read text is an edited export.
    it('an export with a number where a sealed key, an attestation or a record is text: refused as malformed, not a 500', async () => {
      /** The first row of `table` with `column` set to a number. */
      const numbered = (table: string, column: string) => (dump: EditableDump) => {
        const [row] = dump.tables[table] ?? [];
        if (row === undefined) throw new Error(`the export holds a row of ${table}`);
        row[column] = 7;
      };
      const edits: [string, (dump: EditableDump) => void, 'state' | 'shard'][] = [
        ['signing key private part', numbered('signing_keys', 'private_jwk'), 'state'],
        ['live policy set attestation', numbered('live_policy_set', 'attestation'), 'state'],
        ['audit record', numbered('audit_events', 'event'), 'shard'],
      ];
      for (const [what, edit, part] of edits) {
        const target = await deployment();
        const description = await refusedLeavesFresh(target, await restore(target, edited(edit, part)), 400, 'malformed');
        expect(description, what).toMatch(/has a number in (private_jwk|attestation|event), a text column$/);
      }
    });

    it('an export of a newer schema, or one naming a table this schema does not have', async () => {
      const target = await deployment();
      await refusedLeavesFresh(
        target,
        await restore(
          target,
          edited((dump) => (dump.schema_version = SCHEMA_VERSION + 1)),
        ),
        409,
        'schema_too_new',
      );
      await refusedLeavesFresh(
        target,
        await restore(
          target,
          edited((dump) => (dump.tables['planted'] = [])),
        ),
        400,
        'malformed',
      );
      await refusedLeavesFresh(target, await restore(target, 'not json'), 400, 'malformed');
    });
  });
});
