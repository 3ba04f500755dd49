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
import { revocationKey, revocationList, type RevocationList } from '../../src/core/revocation/revocation-list.ts';
import { appendExaminations, examinationRecord } from '../../src/core/revocation/examine-token.ts';
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
import { AUDIT_INDEX_COLUMNS } from '../../src/core/audit/audit-index.ts';
import { type CanonicalEvent, canonicalEvent, chainHashOfCanonical, GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { runGrantsOf } from '../../src/core/audit/run-grants.ts';
import type { ReplayGuard } from '../../src/core/replay/replay-guard.ts';
import { resolveIssuer } from '../../src/core/verify/trusted-issuer.ts';
import { writerThreadReplayGuard } from '../../src/runtimes/node/writer-thread-stores.ts';

/** The GitHub Actions issuer (github.com) as a policy of the `github` kind names it, and the broker's trusted issuers holding it. */
const GITHUB_ACTIONS = resolveIssuer('github', { allowHttpLoopback: false });
const githubActionsTrusted = () => ({ issuer: (url: string) => (url === GITHUB_ACTIONS.url ? GITHUB_ACTIONS : undefined) });

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
    revocations = revocationList(guard, (keys, now) => guard.holdsAll(keys, now));
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
        issuer: GITHUB_ACTIONS.url,
        claims: { repository: 'acme/skew', repository_id: '901', run_id: '77' },
        issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
      }),
    );
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    const revoked = await revokeEndedWorkTokens(deps, {
      deployment: 'github.com',
      repositoryId: '901',
      runId: '77',
      job: { id: '78', checkRunId: '78' },
      runAttempt: 1,
      deliveryId: 'delivery-1',
    });
    expect(revoked).toEqual({ revoked: 1, underAnotherRecord: 0 });
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  });

  /** Each test's repository has an id of its own: a run's grants are found by its repository's id. */
  const REPOSITORY_IDS: Readonly<Record<string, string>> = { 'acme/busy': '902', 'acme/older': '903', 'acme/busier': '904', 'acme/held': '905' };
  const idOf = (repository: string) => REPOSITORY_IDS[repository] as string;
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
              issuer: GITHUB_ACTIONS.url,
              claims: { repository, repository_id: idOf(repository), run_id: '1' },
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
        issuer: GITHUB_ACTIONS.url,
        claims: { repository, repository_id: idOf(repository), run_id: '88', ...(checkRunId === undefined ? {} : { check_run_id: checkRunId }) },
        issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp: Math.floor(at / 1000) + 3600 },
      }),
    );
    return jti;
  };
  const jobEnded = (repository: string) => ({
    deployment: 'github.com',
    repositoryId: idOf(repository),
    runId: '88',
    job: { id: '89', checkRunId: '89' },
    runAttempt: 1,
    deliveryId: `delivery-${repository}`,
  });

  it("finds a job's tokens past more of its repository's older grants than a page of the log holds", async () => {
    const now = Date.now();
    await otherGrants('acme/busy', 10_001, now - 20 * 60_000);
    const jti = await jobGrant('acme/busy', now - 60_000);
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/busy'))).toEqual({ revoked: 1, underAnotherRecord: 0 });
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  }, 30_000);

  it('ends a token of the run without check_run_id (older GHES) granted long before the job that ended started', async () => {
    const jti = await jobGrant('acme/older', Date.now() - 40 * 60_000, undefined);
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/older'))).toEqual({ revoked: 1, underAnotherRecord: 0 });
    expect(await revocations.isRevoked(jti, Date.now())).toBe(true);
  });

  it("holds a revocation a job's end writes while its token verifies: to its exp and the skew after it, not the skew after now", async () => {
    const at = Date.now() - 60_000;
    const jti = await jobGrant('acme/held', at);
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/held'))).toEqual({ revoked: 1, underAnotherRecord: 0 });
    const verifiesUntil = Math.floor(at / 1000) + 3600 + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS;
    expect(await revocations.isRevoked(jti, verifiesUntil * 1000)).toBe(true);
    expect(await revocations.isRevoked(jti, (verifiesUntil + 1) * 1000)).toBe(false);
  });

  it("revokes a job's first token however many of its repository's grants follow it, the old page limit's 10,000 and more", async () => {
    const started = Date.now() - 60_000;
    const first = await jobGrant('acme/busier', started + 1_000);
    await otherGrants('acme/busier', 10_001, started + 2_000);
    const latest = await jobGrant('acme/busier', started + 3_000);
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    expect(await revokeEndedWorkTokens(deps, jobEnded('acme/busier'))).toEqual({ revoked: 2, underAnotherRecord: 0 });
    expect([await revocations.isRevoked(first, Date.now()), await revocations.isRevoked(latest, Date.now())]).toEqual([true, true]);
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

/** Records as a release before wrote them: each alone, chained, with no index row and no MAC. */
function writeRecordsAsBefore(db: SqliteFile, records: readonly Pick<CanonicalEvent, 'text' | 'index'>[]): void {
  let prev = GENESIS_HASH;
  for (const [seq, { text, index }] of records.entries()) {
    const hash = chainHashOfCanonical(prev, text);
    db.run(
      `INSERT INTO audit_events (seq, ${AUDIT_INDEX_COLUMNS.join(', ')}, prev_hash, hash, event) VALUES (${Array.from({ length: AUDIT_INDEX_COLUMNS.length + 4 }, () => '?').join(', ')})`,
      [seq + 1, ...AUDIT_INDEX_COLUMNS.map((column) => index[column]), prev, hash, text],
    );
    prev = hash;
  }
}

/** The upgrade to the index of grants by run (schema 14): the grants already recorded whose tokens still verify are in it at once. */
describe('grants recorded before the index of grants by run', () => {
  it('are indexed by the migration while their tokens still verify, so a job ending across the upgrade still finds them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-run-grants-upgrade-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    try {
      migrate(db, 13);
      const now = Date.now();
      const grant = (jti: string, exp: number, claims: Record<string, unknown>) =>
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          claims: { repository: 'acme/upgraded', ...claims },
          issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
        });
      const live = Math.floor(now / 1000) + 600;
      const events = [
        grant('live', live, { repository_id: '905', run_id: '41', check_run_id: '42', run_attempt: '1' }),
        // A claim written as a number is read as claimText reads it: its digits.
        grant('numbers', live, { repository_id: 905, run_id: 41 }),
        grant('in-skew', Math.floor(now / 1000) - ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS + 5, { repository_id: '905', run_id: '41' }),
        grant('expired', Math.floor(now / 1000) - ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS - 5, { repository_id: '905', run_id: '41' }),
        grant('other-run', live, { repository_id: '905', run_id: '43' }),
        grant('no-run', live, {}),
        auditEvent({ claims: { repository_id: '905', run_id: '41' } }),
      ];
      writeRecordsAsBefore(db, events.map(canonicalEvent));
      migrate(db);
      const found = await new SqliteAuditStore(db).grantsOfRun('905', '41', now);
      expect(found.map(({ jti, checkRunId, runAttempt }) => ({ jti, checkRunId, runAttempt })).sort((a, b) => a.jti.localeCompare(b.jti))).toEqual([
        { jti: 'in-skew', checkRunId: null, runAttempt: null },
        { jti: 'live', checkRunId: '42', runAttempt: '1' },
        { jti: 'numbers', checkRunId: null, runAttempt: null },
      ]);
    } finally {
      db.close();
    }
  });
});

/** The upgrade to schema 15: the index of grants by run keeps each grant's issuer, and its claims as an append writes them. */
describe('grants indexed before the index kept their issuer', () => {
  it('take their issuer from their record, and a claim recorded as the number 41.0 is indexed as 41, as an append indexes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-run-grants-issuer-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    try {
      migrate(db, 13);
      const now = Date.now();
      const exp = Math.floor(now / 1000) + 600;
      const grant = (jti: string, issuer: string, claims: string) => {
        const canonical = canonicalEvent(
          auditEvent({
            decision: 'granted',
            reason: 'granted',
            issuer,
            claims: { repository: 'acme/upgraded', repository_id: '907', run_id: '0', check_run_id: '0', run_attempt: '0' },
            issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
          }),
        );
        // The claims as another writer may have recorded them: numbers, 41.0 among them, which JavaScript reads as 41.
        return {
          ...canonical,
          text: canonical.text.replace('"check_run_id":"0","repository":"acme/upgraded","repository_id":"907","run_attempt":"0","run_id":"0"', claims),
        };
      };
      const events = [
        grant('reals', GITHUB_ACTIONS.url, '"check_run_id":42.0,"repository":"acme/upgraded","repository_id":907,"run_attempt":1.0,"run_id":41.0'),
        grant('lookalike', 'https://oidc.acme.dev', '"check_run_id":"42","repository":"acme/upgraded","repository_id":"907","run_attempt":"1","run_id":"41"'),
      ];
      expect(events[0]?.text).toContain('"run_id":41.0');
      writeRecordsAsBefore(db, events);
      migrate(db, 14);
      migrate(db);
      const found = await new SqliteAuditStore(db).grantsOfRun('907', '41', now);
      expect(found.map(({ jti, issuer, checkRunId, runAttempt }) => ({ jti, issuer, checkRunId, runAttempt }))).toEqual([
        { jti: 'reals', issuer: GITHUB_ACTIONS.url, checkRunId: '42', runAttempt: '1' },
        { jti: 'lookalike', issuer: 'https://oidc.acme.dev', checkRunId: '42', runAttempt: '1' },
      ]);
      // What an append indexes of the same record (runGrantsOf reads it as JavaScript does).
      expect(runGrantsOf(JSON.parse(events[0]!.text) as AuditEvent)).toMatchObject([{ repositoryId: '907', runId: '41', checkRunId: '42', runAttempt: '1' }]);
    } finally {
      db.close();
    }
  });
});

/**
 * The upgrade to schema 18: the index of grants by run is keyed by each row's role too. Before, a delegated grant whose
 * subject, of another issuer, named its GitHub Actions actor's repository_id and run_id kept the subject's row alone.
 */
describe("grants indexed before the index kept each row's role", () => {
  it("take their role from their record, and the actor rows a subject of another issuer naming the same run kept out are added: the actor's job's end revokes those tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-run-grants-role-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    const forgejo = 'https://forgejo.acme.dev/api/actions';
    try {
      migrate(db, 17);
      const now = Date.now();
      const exp = Math.floor(now / 1000) + 600;
      const delegated = (jti: string, issuer: string, subject: Record<string, unknown>, actor: Record<string, unknown>) =>
        canonicalEvent(
          auditEvent({
            decision: 'granted',
            reason: 'granted',
            issuer,
            claims: { repository_id: '908', ...subject },
            actor: {
              issuer: GITHUB_ACTIONS.url,
              sha256: 'ab'.repeat(32),
              subject: 'orchestrator',
              run: { repository_id: '908', ...actor },
            } as AuditEvent['actor'],
            issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
          }),
        );
      const events = [
        // A Forgejo job's token whose ids are the GitHub Actions actor's: schema 17 kept its subject's row alone.
        delegated('collided', forgejo, { run_id: '41' }, { run_id: '41', check_run_id: '42', run_attempt: '1' }),
        // The actor of another run: its own row, under the actor's run.
        delegated(
          'actor-elsewhere',
          GITHUB_ACTIONS.url,
          { run_id: '50', check_run_id: '51', run_attempt: '1' },
          { run_id: '41', check_run_id: '43', run_attempt: '1' },
        ),
        // Another job of the subject's own issuer and run: one row, folded, as an append still writes it.
        delegated('folded', GITHUB_ACTIONS.url, { run_id: '41', check_run_id: '44', run_attempt: '1' }, { run_id: '41', check_run_id: '45', run_attempt: '1' }),
      ];
      writeRecordsAsBefore(db, events);
      // The rows schema 17's append wrote of them, and one whose record was pruned since.
      const [collided, elsewhere, folded] = events.map((event) => event.index.id);
      const rowsBefore: readonly (readonly [string | undefined, string, string | null, string | null, string | null, string])[] = [
        [collided, '41', forgejo, null, null, 'collided'],
        [elsewhere, '50', GITHUB_ACTIONS.url, '51', '1', 'actor-elsewhere'],
        [elsewhere, '41', GITHUB_ACTIONS.url, '43', '1', 'actor-elsewhere'],
        [folded, '41', GITHUB_ACTIONS.url, null, '1', 'folded'],
        ['01PRUNED', '41', null, '46', '1', 'pruned'],
      ];
      for (const [auditEventId, runId, issuer, checkRunId, runAttempt, jti] of rowsBefore) {
        db.run(
          'INSERT INTO audit_run_grants (audit_event_id, repository_id, run_id, issuer, check_run_id, run_attempt, jti, exp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [auditEventId ?? null, '908', runId, issuer, checkRunId, runAttempt, jti, exp],
        );
      }
      migrate(db);
      const store = new SqliteAuditStore(db);
      const rows = async (runId: string) =>
        (await store.grantsOfRun('908', runId, now)).map(({ jti, role, issuer, checkRunId, runAttempt }) => ({ jti, role, issuer, checkRunId, runAttempt }));
      expect(await rows('41')).toEqual([
        { jti: 'pruned', role: 'subject', issuer: null, checkRunId: '46', runAttempt: '1' },
        { jti: 'collided', role: 'subject', issuer: forgejo, checkRunId: null, runAttempt: null },
        { jti: 'collided', role: 'actor', issuer: GITHUB_ACTIONS.url, checkRunId: '42', runAttempt: '1' },
        { jti: 'actor-elsewhere', role: 'actor', issuer: GITHUB_ACTIONS.url, checkRunId: '43', runAttempt: '1' },
        { jti: 'folded', role: 'subject', issuer: GITHUB_ACTIONS.url, checkRunId: null, runAttempt: '1' },
      ]);
      expect(await rows('50')).toEqual([{ jti: 'actor-elsewhere', role: 'subject', issuer: GITHUB_ACTIONS.url, checkRunId: '51', runAttempt: '1' }]);
      // What an append of the same records indexes now.
      expect(
        events
          .flatMap((event) => runGrantsOf(JSON.parse(event.text) as AuditEvent))
          .map(({ jti, role, runId, checkRunId }) => ({ jti, role, runId, checkRunId })),
      ).toEqual([
        { jti: 'collided', role: 'subject', runId: '41', checkRunId: null },
        { jti: 'collided', role: 'actor', runId: '41', checkRunId: '42' },
        { jti: 'actor-elsewhere', role: 'subject', runId: '50', checkRunId: '51' },
        { jti: 'actor-elsewhere', role: 'actor', runId: '41', checkRunId: '43' },
        { jti: 'folded', role: 'subject', runId: '41', checkRunId: null },
      ]);
      // The GitHub Actions actor's job ends: the token granted with it is revoked, though its subject is Forgejo's.
      const guard = new SqliteReplayGuard(db);
      const revocations = revocationList(guard, (keys, at) => guard.holdsAll(keys, at));
      const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit: store, revocations, now: () => Date.now() };
      const ended = {
        deployment: 'github.com',
        repositoryId: '908',
        runId: '41',
        job: { id: '42', checkRunId: '42' },
        runAttempt: 1,
        deliveryId: 'delivery-upgrade',
      };
      expect(await revokeEndedWorkTokens(deps, ended)).toEqual({ revoked: 2, underAnotherRecord: 0 });
      expect(await revocations.areRevoked(['collided', 'folded', 'actor-elsewhere'], Date.now())).toEqual([true, true, false]);
    } finally {
      db.close();
    }
  });
});

/**
 * The upgrade to schema 19: each row of the index of grants by run keeps the kind of issuer that verified its token, and the
 * end of a job reads that, not whether the policies trust the issuer still. The rows indexed before do not say.
 */
describe("grants indexed before the index kept their issuer's kind", () => {
  it('are read by the kind the policies give their issuer now, as before; a grant indexed since by its recorded kind, whatever the policies trust', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-run-grants-kind-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    try {
      migrate(db, 18);
      const now = Date.now();
      const exp = Math.floor(now / 1000) + 600;
      const claims = { repository_id: '909', run_id: '41', check_run_id: '42', run_attempt: '1' };
      const before = canonicalEvent(
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          issuer: GITHUB_ACTIONS.url,
          claims,
          issued: { jti: 'before', sub: 'ci', aud: ['x'], scope: [], exp },
        }),
      );
      writeRecordsAsBefore(db, [before]);
      db.run(
        'INSERT INTO audit_run_grants (repository_id, run_id, audit_event_id, role, issuer, check_run_id, run_attempt, jti, exp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        ['909', '41', before.index.id, 'subject', GITHUB_ACTIONS.url, '42', '1', 'before', exp],
      );
      migrate(db);
      const store = new SqliteAuditStore(db);
      await store.append(
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          issuer: GITHUB_ACTIONS.url,
          issuer_kind: 'github',
          claims,
          issued: { jti: 'since', sub: 'ci', aud: ['x'], scope: [], exp },
        }),
      );
      expect((await store.grantsOfRun('909', '41', now)).map(({ jti, issuerKind }) => ({ jti, issuerKind }))).toEqual([
        { jti: 'before', issuerKind: null },
        { jti: 'since', issuerKind: 'github' },
      ]);
      const guard = new SqliteReplayGuard(db);
      const revocations = revocationList(guard, (keys, at) => guard.holdsAll(keys, at));
      const ended = {
        deployment: 'github.com',
        repositoryId: '909',
        runId: '41',
        job: { id: '42', checkRunId: '42' },
        runAttempt: 1,
        deliveryId: 'delivery-kind',
      };
      // The policies trust no issuer now: the grant whose record says GitHub Actions verified it is revoked all the same.
      const nothingTrusted = () => ({ issuer: () => undefined });
      expect(await revokeEndedWorkTokens({ issuer: BROKER_ISSUER, issuers: nothingTrusted, audit: store, revocations, now: () => Date.now() }, ended)).toEqual({
        revoked: 1,
        underAnotherRecord: 0,
      });
      expect(await revocations.areRevoked(['before', 'since'], Date.now())).toEqual([false, true]);
      // The row from before the upgrade, once the policies trust its issuer as GitHub Actions again.
      expect(
        await revokeEndedWorkTokens({ issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit: store, revocations, now: () => Date.now() }, ended),
      ).toEqual({ revoked: 1, underAnotherRecord: 0 });
      expect(await revocations.isRevoked('before', Date.now())).toBe(true);
    } finally {
      db.close();
    }
  });
});

/**
 * A job may hold thousands of keyway tokens, and GitHub gives the `workflow_job` delivery 10 s: revoking them one at a
 * time (a record, then a revocation, each a commit waited for) took about 2.8 ms a token on Node. Their records are
 * appended together and the revocations written together instead (`npm run bench:revoke-ended-work` prints the figure).
 */
describe('the end of a job holding many keyway tokens', () => {
  it('records their revocations in group commits of many records and reserves and writes the revocations in one call each, not one of each per token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-many-job-tokens-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    migrate(db);
    const commits: number[] = [];
    const audit = new GroupCommitAuditStore(db, join(dir, DATABASE_FILE), { onCommit: (records) => commits.push(records) });
    try {
      const writer = writerThreadReplayGuard(audit);
      const writes: number[] = [];
      const guard: ReplayGuard = {
        claim: (claim) => {
          writes.push(1);
          return writer.claim(claim);
        },
        claimAll: (claims) => {
          writes.push(claims.length);
          return writer.claimAll(claims);
        },
      };
      const reads = new SqliteReplayGuard(db);
      const revocations = revocationList(guard, (keys, at) => reads.holdsAll(keys, at));
      const now = Date.now();
      const tokens = Array.from({ length: 1_100 }, () => ({ jti: tokenId(now), exp: Math.floor(now / 1000) + 3600 }));
      await Promise.all(
        tokens.map(({ jti, exp }) =>
          audit.append(
            auditEvent({
              decision: 'granted',
              reason: 'granted',
              issuer: GITHUB_ACTIONS.url,
              claims: { repository: 'acme/many', repository_id: '906', run_id: '51', check_run_id: '52' },
              issued: { jti, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp },
            }),
          ),
        ),
      );
      // One revoked already (POST /revoke): left alone, without another record.
      const [earlier] = tokens;
      await revocations.revoke(earlier!, 'the-earlier-record', now);
      commits.length = 0;
      writes.length = 0;

      const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
      const ended = {
        deployment: 'github.com',
        repositoryId: '906',
        runId: '51',
        job: { id: '52', checkRunId: '52' },
        runAttempt: 1,
        deliveryId: 'delivery-many',
      };
      expect(await revokeEndedWorkTokens(deps, ended)).toEqual({ revoked: 1_099, underAnotherRecord: 0 });

      expect(commits.reduce((sum, records) => sum + records, 0)).toBe(1_099);
      expect(commits.length).toBeLessThanOrEqual(Math.ceil(1_099 / 512));
      // One call reserves them all (a delivery of the run's end arriving at once takes none twice), one revokes them all.
      expect(writes).toEqual([1_099, 1_099]);
      const revoked = await Promise.all(tokens.map(({ jti }) => revocations.isRevoked(jti, Date.now())));
      expect(revoked.every(Boolean)).toBe(true);
      const { records } = await audit.query({ reasons: ['token_revoked'], limit: 2_000, order: 'asc' });
      expect(records).toHaveLength(1_099);
      expect(records.some(({ event }) => event.detail?.includes(earlier!.jti))).toBe(false);
    } finally {
      await audit.close();
      db.close();
    }
  });
});

/**
 * A job's delivery and its run's, arriving at once, may both find a keyway token live: the one that reserves it first
 * records and revokes it. The other waits for that a while, and does what the first left undone itself.
 */
describe('a keyway token another delivery of the run reserved first', () => {
  /** A job's token, live, in a file of its own; the job's delivery (`second`) and what it finds once it has run. */
  async function jobToken() {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-reserved-elsewhere-'));
    const db = openSqliteFile(join(dir, DATABASE_FILE));
    migrate(db);
    const audit = new SqliteAuditStore(db);
    const guard = new SqliteReplayGuard(db);
    const revocations = revocationList(guard, (keys, at) => guard.holdsAll(keys, at));
    const now = Date.now();
    const token = { jti: tokenId(now), exp: Math.floor(now / 1000) + 3600 };
    await audit.append(
      auditEvent({
        decision: 'granted',
        reason: 'granted',
        issuer: GITHUB_ACTIONS.url,
        claims: { repository: 'acme/reserved', repository_id: '907', run_id: '61', check_run_id: '62' },
        issued: { ...token, sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [] },
      }),
    );
    const deps = { issuer: BROKER_ISSUER, issuers: githubActionsTrusted, audit, revocations, now: () => Date.now() };
    const job = { deployment: 'github.com', repositoryId: '907', runId: '61', job: { id: '62', checkRunId: '62' }, runAttempt: 1, deliveryId: 'delivery-job' };
    return {
      token,
      deps,
      /** The job's delivery, now unless it brings its own clock. */
      second: (own: Partial<typeof deps> = {}) => revokeEndedWorkTokens({ ...deps, ...own }, job),
      /** The run's delivery, with its own clock and revocation list. */
      runEnded: (own: Partial<typeof deps>) => revokeEndedWorkTokens({ ...deps, ...own }, { ...job, job: undefined, deliveryId: 'delivery-run' }),
      revocationRecords: async () => (await audit.query({ reasons: ['token_revoked'], limit: 10, order: 'asc' })).records.map(({ event }) => event.id),
      /** The audit record the token's revocation is held under, and whether it is held until the token's exp. */
      revocation: async () => {
        const held = await guard.claim({ key: revocationKey(token.jti), expiresAt: token.exp, auditEventId: 'a-later-claim', now: Date.now() });
        return { heldBy: held.claimed ? undefined : held.heldBy.auditEventId, untilExp: await revocations.isRevoked(token.jti, token.exp * 1000) };
      },
      close: () => db.close(),
    };
  }

  /** The run's delivery played out by hand: the token reserved under the record of its revocation, which it then writes, then the revocation. */
  async function reservedByHand({ token, deps }: Awaited<ReturnType<typeof jobToken>>, now = Date.now()) {
    const record = examinationRecord(
      { issuer: BROKER_ISSUER },
      {
        caller: { webhook: 'workflow_run' },
        reason: 'token_revoked',
        detail: `revoked keyway token ${token.jti}: the workflow run 61 completed`,
        context: { requestId: 'delivery-run', clientIp: undefined, userAgent: undefined },
        now,
      },
    );
    expect(await deps.revocations.reserve([{ jti: token.jti, auditEventId: record.id }], 60, now)).toEqual([{ taken: true }]);
    return {
      id: record.id,
      record: () => appendExaminations(deps, [record]),
      revocation: () => deps.revocations.revokeAll([{ ...token, auditEventId: record.id }], Date.now()),
    };
  }

  it('waits while the first records and revokes it, and records nothing itself', async () => {
    const job = await jobToken();
    try {
      const first = await reservedByHand(job);
      const done = new Promise((resolve) => setTimeout(resolve, 300)).then(first.record).then(first.revocation);
      expect(await job.second()).toEqual({ revoked: 0, underAnotherRecord: 0 });
      await done;
      expect(await job.revocationRecords()).toEqual([first.id]);
      expect(await job.revocation()).toEqual({ heldBy: first.id, untilExp: true });
    } finally {
      job.close();
    }
  });

  it("leaves it the first's for as long as the first's lease runs: 30 s after the first reserved it by its clock", async () => {
    const job = await jobToken();
    try {
      // The run's delivery, its clock 30 s behind, reserves the token and records its revocation; its write of the
      // revocation is slow (held until let go).
      let letGo = () => {};
      const held = new Promise<void>((resolve) => (letGo = resolve));
      const slow = {
        ...job.deps.revocations,
        revokeAll: (...args: Parameters<RevocationList['revokeAll']>) => held.then(() => job.deps.revocations.revokeAll(...args)),
      };
      const first = job.runEnded({ revocations: slow, now: () => Date.now() - 30_000 });
      await expect.poll(job.revocationRecords).toHaveLength(1);
      setTimeout(letGo, 300);
      expect(await job.second()).toEqual({ revoked: 0, underAnotherRecord: 0 });
      expect(await first).toEqual({ revoked: 1, underAnotherRecord: 0 });
      expect(await job.revocationRecords()).toHaveLength(1);
    } finally {
      job.close();
    }
  });

  it('revokes it under the record the first wrote when the first failed to revoke it, recording nothing more', async () => {
    const job = await jobToken();
    try {
      const first = await reservedByHand(job);
      await first.record();
      // This delivery revoked it, though under the first's record and with no record of its own: the answer says both.
      expect(await job.second()).toEqual({ revoked: 1, underAnotherRecord: 1 });
      expect(await job.revocationRecords()).toEqual([first.id]);
      expect(await job.revocation()).toEqual({ heldBy: first.id, untilExp: true });
    } finally {
      job.close();
    }
  });

  it("leaves it the first's to the last second of its 60 s lease, and takes it itself from the next: then it records its own revocation", async () => {
    const at = Date.now();
    for (const [leaseAgo, expected] of [
      [60, { revoked: 1, underAnotherRecord: 1 }],
      [61, { revoked: 1, underAnotherRecord: 0 }],
    ] as const) {
      const job = await jobToken();
      try {
        const first = await reservedByHand(job, at - leaseAgo * 1000);
        await first.record();
        expect(await job.second({ now: () => at }), `reserved ${leaseAgo} s before`).toEqual(expected);
        expect(await job.revocationRecords()).toHaveLength(expected.underAnotherRecord === 1 ? 1 : 2);
      } finally {
        job.close();
      }
    }
  });

  it('records and revokes it itself when the first wrote nothing', async () => {
    const job = await jobToken();
    try {
      const first = await reservedByHand(job);
      expect(await job.second()).toEqual({ revoked: 1, underAnotherRecord: 0 });
      const [own, ...more] = await job.revocationRecords();
      expect([own === first.id, more]).toEqual([false, []]);
      expect(await job.revocation()).toEqual({ heldBy: own, untilExp: true });
    } finally {
      job.close();
    }
  });
});
