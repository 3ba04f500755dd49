import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AuditEvent } from '../src/core/audit/audit-event.ts';
import { maintainAuditLog } from '../src/core/audit/maintain-audit-log.ts';
import { checkpointSigner, checkpointVerifier } from '../src/core/audit/sign-checkpoint.ts';
import { KeyRing } from '../src/core/mint/key-ring.ts';
import { sha256Hex } from '../src/core/mint/sha256-hex.ts';
import { SecretBox } from '../src/core/secrets/secret-box.ts';
import { GITHUB_TOKEN_PURPOSE } from '../src/features/github/app/revoke-due-tokens.ts';
import { readMasterKeyFile } from '../src/storage/master-key-file.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openSqliteFile } from '../src/storage/sqlite-file.ts';
import { SqliteAuditStore } from '../src/storage/sqlite-audit-store.ts';
import { SqliteKeyStore } from '../src/storage/sqlite-key-store.ts';
import { SqliteReplayGuard } from '../src/storage/sqlite-replay-guard.ts';
import { SqliteRevocationStore } from '../src/storage/sqlite-revocation-store.ts';

/**
 * Writes test/fixtures/releases/<version>.db: a database as this release writes it, for the
 * upgrade test to open with every later release (test/node/release-fixtures.test.ts). Run it
 * once per release, `node scripts/release-fixture.ts`, and commit the file; a fixture already
 * written is never replaced. Signing keys are sealed under test/fixtures/releases/master.key;
 * the log holds a granted and a denied exchange and a signed checkpoint, beside a single-use
 * claim and a GitHub token awaiting revocation. Keys and ids are random; everything else is fixed.
 */
export const FIXTURES = resolve(import.meta.dirname, '../test/fixtures/releases');
export const FIXTURE_ISSUER = 'https://keyway.fixture.test';
const NOW = Date.parse('2026-01-01T00:00:00Z');
const version = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../package.json'), 'utf8')) as { version: string }).version;
const output = join(FIXTURES, `${version}.db`);
if (existsSync(output)) {
  console.error(`keyway: ${output} exists: a release's fixture is written once and kept`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'keyway-fixture-'));
const db = openSqliteFile(join(work, 'keyway.db'));
try {
  migrate(db);
  const box = await SecretBox.fromMasterKeys(readMasterKeyFile(join(FIXTURES, 'master.key')));
  const ring = await KeyRing.open(new SqliteKeyStore(db, box), NOW);
  const audit = new SqliteAuditStore(db);
  const exchange = (n: number, granted: boolean): AuditEvent => ({
    id: `01FIXTURE${String(n).padStart(17, '0')}`,
    time: new Date(NOW + n * 1000).toISOString(),
    decision: granted ? 'granted' : 'denied',
    reason: granted ? 'granted' : 'no_policy_matched',
    request: { id: `req-${n}`, client_ip: '192.0.2.10', audience: ['https://deploy.example'], scope: ['deploy:staging'] },
    subject_token: { sha256: sha256Hex(`token-${n}`), jti: `jti-${n}`, claimed_iss: 'https://token.actions.githubusercontent.com' },
    issuer: 'https://token.actions.githubusercontent.com',
    subject: 'repo:acme/api:ref:refs/heads/main',
    claims: { repository: 'acme/api', ref: 'refs/heads/main' },
    policy: { candidates: ['deploy'], matched: granted ? ['deploy'] : [], denied_by: [], audit_mode: [], ...(granted ? { granted_by: 'deploy' } : {}) },
    ...(granted
      ? { issued: { jti: `issued-${n}`, sub: 'repo:acme/api', aud: ['https://deploy.example'], scope: ['deploy:staging'], exp: NOW / 1000 + 600 } }
      : {}),
  });
  for (let n = 1; n <= 4; n += 1) await audit.append(exchange(n, n % 2 === 1));
  await maintainAuditLog(
    audit,
    checkpointSigner(
      FIXTURE_ISSUER,
      () => ring,
      () => NOW + 5000,
    ),
    { now: NOW + 5000, retentionDays: 0, verify: checkpointVerifier(() => ring) },
  );
  await audit.append(exchange(5, true));
  await new SqliteReplayGuard(db).claim({
    key: sha256Hex('jti\nhttps://token.actions.githubusercontent.com\njti-5'),
    expiresAt: NOW / 1000 + 3600,
    auditEventId: exchange(5, true).id,
    now: NOW,
  });
  const revocation = exchange(5, true).id;
  await new SqliteRevocationStore(db).add({
    id: revocation,
    sealedToken: await box.seal('ghs_fixture-token', GITHUB_TOKEN_PURPOSE, revocation),
    tokenSha256: sha256Hex('ghs_fixture-token'),
    apiUrl: 'https://api.github.com',
    installationId: 42,
    revokeAt: NOW + 600_000,
    githubExpiresAt: NOW + 3_600_000,
    repositoryId: '1001',
    runId: '2002',
    checkRunId: '3003',
    runAttempt: 1,
    actorJob: undefined,
    attempts: 0,
    nextAttemptAt: NOW + 600_000,
  });
  // Through the backup API: one self-contained file, as `keyway backup` writes it.
  await db.backup(output);
  console.log(`keyway: wrote ${output}`);
} finally {
  db.close();
  rmSync(work, { recursive: true, force: true });
}
