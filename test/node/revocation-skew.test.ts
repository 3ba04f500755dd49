import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../../src/core/limits/memory-rate-limiter.ts';
import { silentLogger } from '../../src/core/log.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../../src/core/mint/verify-access-token.ts';
import { PolicySet } from '../../src/core/policy/policy-set.ts';
import { revocationList, type RevocationList } from '../../src/core/revocation/revocation-list.ts';
import { createBroker } from '../../src/runtimes/create-broker.ts';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { DATABASE_FILE } from '../../src/runtimes/node/start-node-broker.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SqliteAlertStore } from '../../src/storage/sqlite-alert-store.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteReplayGuard } from '../../src/storage/sqlite-replay-guard.ts';
import { BROKER_ISSUER, testConfig } from './node-harness.ts';
import { auditEvent } from '../support/audit-event.ts';
import { tokenId } from '../../src/core/mint/token-id.ts';
import { revokeEndedWorkTokens } from '../../src/features/github/webhooks/revoke-ended-work-tokens.ts';

/** A keyway token still verifies for the clock skew tolerated after its exp, so it can still be revoked then. */
describe('revoking a keyway token in the skew after its exp', () => {
  let db: SqliteFile;
  let audit: GroupCommitAuditStore;
  let ring: KeyRing;
  let revocations: RevocationList;
  let app: ReturnType<typeof createBroker>['app'];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-revocation-skew-'));
    db = openSqliteFile(join(dir, DATABASE_FILE));
    migrate(db);
    audit = new GroupCommitAuditStore(db, join(dir, DATABASE_FILE));
    ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    const guard = new SqliteReplayGuard(db);
    revocations = revocationList(guard, (key, now) => guard.holds(key, now));
    ({ app } = createBroker({
      settings: testConfig(dir),
      policies: () => new PolicySet([]),
      keys: () => ring,
      audit,
      alerts: new SqliteAlertStore(db),
      replay: guard,
      revocations,
      clientIp: () => '127.0.0.1',
      limiter: new MemoryRateLimiter(),
      log: silentLogger,
    }));
  });
  afterAll(async () => {
    await audit.close();
    db.close();
  });

  const expiredSecondsAgo = async (seconds: number) =>
    mintAccessToken({
      issuer: BROKER_ISSUER,
      key: ring.signing,
      grant: { policy: { id: 'deploy' }, audiences: ['https://deploy.acme.dev'], scopes: [], ttlSeconds: 60, subject: 'ci', claims: {} },
      source: { iss: 'https://ci.example', sub: 'job' },
      now: Date.now() - (60 + seconds) * 1000,
    });
  const revoke = (token: string) =>
    app.request('/revoke', { method: 'POST', body: new URLSearchParams({ token }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });

  it('revokes at the end of a run a token of the longest TTL in its skew after exp: its grant is found and its jti held', async () => {
    const maxTtlSeconds = 3600;
    const grantedAt = Date.now() - (maxTtlSeconds + 10) * 1000;
    const jti = tokenId(grantedAt);
    const exp = Math.floor(grantedAt / 1000) + maxTtlSeconds;
    await audit.append(
      auditEvent({
        time: new Date(grantedAt).toISOString(),
        decision: 'granted',
        reason: 'granted',
        claims: { repository: 'acme/skew', repository_id: '901', run_id: '77' },
        issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
      }),
    );
    const deps = { issuer: BROKER_ISSUER, audit, revocations, now: () => Date.now(), maxTtlSeconds, log: silentLogger };
    const revoked = await revokeEndedWorkTokens(deps, {
      repository: 'acme/skew',
      repositoryId: '901',
      runId: '77',
      job: { id: '78', checkRunId: '78' },
      runAttempt: 1,
      deliveryId: 'delivery-1',
    });
    expect(revoked).toBe(1);
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  });

  /** `count` grants of the repository's other runs, recorded `at`, in batches the audit writer commits together. */
  const otherGrants = async (repository: string, count: number, at: number) => {
    for (let done = 0; done < count; done += 500)
      await Promise.all(
        Array.from({ length: Math.min(500, count - done) }, () =>
          audit.append(
            auditEvent({
              time: new Date(at).toISOString(),
              decision: 'granted',
              reason: 'granted',
              claims: { repository, repository_id: '902', run_id: '1' },
              issued: { jti: tokenId(at), sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp: Math.floor(at / 1000) + 3600 },
            }),
          ),
        ),
      );
  };
  /** A grant of run 88 recorded `at`: of its job 89's check run, or of the run with no check_run_id (older GHES). */
  const jobGrant = async (repository: string, at: number, checkRunId: string | undefined = '89') => {
    const jti = tokenId(at);
    await audit.append(
      auditEvent({
        time: new Date(at).toISOString(),
        decision: 'granted',
        reason: 'granted',
        claims: { repository, repository_id: '902', run_id: '88', ...(checkRunId === undefined ? {} : { check_run_id: checkRunId }) },
        issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp: Math.floor(at / 1000) + 3600 },
      }),
    );
    return jti;
  };
  const jobEnded = (repository: string) => ({
    repository,
    repositoryId: '902',
    runId: '88',
    job: { id: '89', checkRunId: '89' },
    runAttempt: 1,
    deliveryId: `delivery-${repository}`,
  });

  it("finds a job's tokens newest first, past more of its repository's older grants than it looks through", async () => {
    const now = Date.now();
    await otherGrants('acme/busy', 10_001, now - 20 * 60_000);
    const jti = await jobGrant('acme/busy', now - 60_000);
    const deps = { issuer: BROKER_ISSUER, audit, revocations, now: () => Date.now(), maxTtlSeconds: 3600, log: silentLogger };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/busy'))).toBe(1);
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  }, 30_000);

  it('ends a token of the run without check_run_id (older GHES) granted long before the job that ended started', async () => {
    const jti = await jobGrant('acme/older', Date.now() - 40 * 60_000, undefined);
    const deps = { issuer: BROKER_ISSUER, audit, revocations, now: () => Date.now(), maxTtlSeconds: 3600, log: silentLogger };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/older'))).toBe(1);
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  });

  it("says in the log when more of the repository's grants followed a job's start than a job's end looks through", async () => {
    const started = Date.now() - 60_000;
    await jobGrant('acme/busier', started + 1_000);
    await otherGrants('acme/busier', 10_001, started + 2_000);
    // Newest first: the job's latest token, with the most life left, is among those looked at.
    const latest = await jobGrant('acme/busier', started + 3_000);
    const warnings: { message: string; fields: unknown }[] = [];
    const log = { ...silentLogger, warn: (message: string, fields?: unknown) => void warnings.push({ message, fields }) };
    const deps = { issuer: BROKER_ISSUER, audit, revocations, now: () => Date.now(), maxTtlSeconds: 3600, log };
    await revokeEndedWorkTokens(deps, jobEnded('acme/busier'));
    expect(await revocations.isRevoked(latest, Date.now())).toBe(true);
    expect(warnings).toEqual([
      {
        message: "keyway tokens of ended CI work: the repository's older grants were not looked at",
        fields: { repository: 'acme/busier', ended: 'the workflow job 89 of run 88 completed', grants_examined: 10_000 },
      },
    ]);
  }, 30_000);

  it('revokes one that expired 5 s ago (verifiers take it for 30 s more), and not one past the skew', async () => {
    const recent = await expiredSecondsAgo(5);
    expect((await revoke(recent.token)).status).toBe(200);
    expect(await revocations.isRevoked(recent.jti, Date.now())).toBe(true);

    const gone = await expiredSecondsAgo(ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS + 5);
    expect((await revoke(gone.token)).status).toBe(200);
    expect(await revocations.isRevoked(gone.jti, Date.now())).toBe(false);
  });
});
