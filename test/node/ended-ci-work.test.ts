import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ciJobOf, githubDeploymentOf, type CiJob } from '../../src/core/claims/github-run.ts';
import { ENDED_CI_WORK_SECONDS, endedCiWork, refuseEndedCiWork } from '../../src/core/replay/ended-ci-work.ts';
import { resolveIssuer } from '../../src/core/verify/trusted-issuer.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteReplayGuard } from '../../src/storage/sqlite-replay-guard.ts';

/** Completed CI work in a real SQLite file, written and read as the Node broker does (the replay guard's store). */
describe('completed CI work', () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-ended-ci-work-')), 'keyway.db'));
  migrate(db);
  const guard = new SqliteReplayGuard(db);
  const ended = endedCiWork(guard, (key, now) => guard.holds(key, now));
  /** As /token checks it for an App on github.com, whose webhooks fill it. */
  const check = { ended, deployment: 'github.com' };
  afterAll(() => db.close());
  const now = Date.now();
  const job = (checkRunId: string | undefined, runAttempt: number | undefined, runId = '700'): CiJob => ({
    repositoryId: '734201',
    runId,
    checkRunId,
    runAttempt,
  });

  it("ends a job's tokens by its check run, and no sibling's, nor a token without check_run_id", async () => {
    await ended.record('github.com', '734201', '700', { kind: 'job', checkRunId: '7001', attempt: 1 }, 'delivery-1', now);
    expect(await ended.hasEnded('github.com', job('7001', 1), now)).toBe(true);
    expect(await ended.hasEnded('github.com', job('7001', undefined), now)).toBe(true);
    expect(await ended.hasEnded('github.com', job('7002', 1), now)).toBe(false);
    expect(await ended.hasEnded('github.com', job(undefined, 1), now)).toBe(false);
    expect(await ended.hasEnded('github.com', job('7001', 1, '701'), now)).toBe(false);
    expect(await ended.hasEnded('github.com', { ...job('7001', 1), repositoryId: '734202' }, now)).toBe(false);
    // A run and a repository whose keys share the shard digit of run 700's: only the rest of the key tells them apart.
    expect(await ended.hasEnded('github.com', job('7001', 1, '707'), now)).toBe(false);
    expect(await ended.hasEnded('github.com', { ...job('7001', 1), repositoryId: '734240' }, now)).toBe(false);
  });

  it("ends a run's attempt and the nine before it, never a later attempt", async () => {
    await ended.record('github.com', '734201', '800', { kind: 'run', attempt: 12 }, 'delivery-2', now);
    for (const attempt of [3, 7, 12]) expect(await ended.hasEnded('github.com', job('8001', attempt, '800'), now), `attempt ${attempt}`).toBe(true);
    for (const attempt of [1, 2, 13]) expect(await ended.hasEnded('github.com', job('8001', attempt, '800'), now), `attempt ${attempt}`).toBe(false);
    expect(await ended.hasEnded('github.com', job('8001', undefined, '800'), now)).toBe(false);
    // A token's run_attempt claim of two digits, as a run re-run ten times or more carries it, is read as that attempt.
    const github = resolveIssuer('github', { allowHttpLoopback: false });
    const claims = (attempt: string) => ({ repository_id: '734201', run_id: '800', run_attempt: attempt });
    await expect(refuseEndedCiWork(check, { issuer: github, claims: claims('12') }, now)).rejects.toMatchObject({ reason: 'ci_work_ended' });
    await expect(refuseEndedCiWork(check, { issuer: github, claims: claims('13') }, now)).resolves.toBeUndefined();
  });

  it('records nothing it cannot match exactly: a job without its check run, a run without its attempt', async () => {
    const before = db.all<{ n: number }>('SELECT count(*) AS n FROM replay_claims')[0]?.n;
    await ended.record('github.com', '734201', '900', { kind: 'job', checkRunId: undefined, attempt: 1 }, 'delivery-3', now);
    await ended.record('github.com', '734201', '900', { kind: 'run', attempt: undefined }, 'delivery-4', now);
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM replay_claims')[0]?.n).toBe(before);
    expect(await ended.hasEnded('github.com', job('9001', 1, '900'), now)).toBe(false);
  });

  it('forgets a completion once every token of its work has expired, and takes it told again', async () => {
    await ended.record('github.com', '734201', '1000', { kind: 'job', checkRunId: '10001', attempt: 1 }, 'delivery-5', now);
    await ended.record('github.com', '734201', '1000', { kind: 'job', checkRunId: '10001', attempt: 1 }, 'delivery-5-again', now);
    const later = now + (ENDED_CI_WORK_SECONDS + 1) * 1000;
    expect(await ended.hasEnded('github.com', job('10001', 1, '1000'), now + ENDED_CI_WORK_SECONDS * 1000)).toBe(true);
    expect(await ended.hasEnded('github.com', job('10001', 1, '1000'), later)).toBe(false);
  });

  it("refuses a GitHub Actions token of ended work, never another issuer's token that carries the same claims", async () => {
    await ended.record('github.com', '734201', '1200', { kind: 'job', checkRunId: '12001', attempt: 1 }, 'delivery-8', now);
    const claims = { repository_id: '734201', run_id: '1200', check_run_id: '12001', run_attempt: '1' };
    const github = resolveIssuer('github', { allowHttpLoopback: false });
    await expect(refuseEndedCiWork(check, { issuer: github, claims }, now)).rejects.toMatchObject({ reason: 'ci_work_ended' });
    // A plain OIDC issuer's claims of those names mean whatever it says: nothing GitHub's webhooks speak for.
    const other = resolveIssuer('https://idp.acme.dev', { allowHttpLoopback: false });
    await expect(refuseEndedCiWork(check, { issuer: other, claims }, now)).resolves.toBeUndefined();
    // Nor where the App's deployment is unknown (webhooks without an App), nor on the host of the App's own GitHub.
    await expect(refuseEndedCiWork({ ended, deployment: undefined }, { issuer: other, claims }, now)).resolves.toBeUndefined();
    const onServer = { ended, deployment: githubDeploymentOf('https://ghes.acme.dev/api/v3') };
    const besideServer = resolveIssuer('https://ghes.acme.dev/oidc', { allowHttpLoopback: false });
    expect(besideServer.preset.name).not.toBe('github');
    await expect(refuseEndedCiWork(onServer, { issuer: besideServer, claims }, now)).resolves.toBeUndefined();
    await expect(refuseEndedCiWork(undefined, { issuer: github, claims }, now)).resolves.toBeUndefined();
  });

  it("refuses only the tokens of the App's own GitHub deployment: another's numbers its repositories and runs from its own counters", async () => {
    // The same job's end on each deployment: only the App's is checked.
    for (const deployment of ['github.com', 'ghes.acme.dev', 'acme.ghe.com']) {
      await ended.record(deployment, '734201', '1300', { kind: 'job', checkRunId: '13001', attempt: 1 }, `delivery-9-${deployment}`, now);
    }
    const claims = { repository_id: '734201', run_id: '1300', check_run_id: '13001', run_attempt: '1' };
    const issuer = (url: string) => resolveIssuer({ kind: 'github', url }, { allowHttpLoopback: false });
    // github.com's own issuer, and an enterprise's unique issuer under it, are of github.com's runs.
    for (const url of ['https://token.actions.githubusercontent.com', 'https://token.actions.githubusercontent.com/acme']) {
      await expect(refuseEndedCiWork(check, { issuer: issuer(url), claims }, now), url).rejects.toMatchObject({ reason: 'ci_work_ended' });
    }
    // A GitHub Enterprise Server's and a GHE.com tenant's jobs under the same numbers are other runs.
    for (const url of ['https://ghes.acme.dev/_services/token', 'https://token.actions.acme.ghe.com']) {
      await expect(refuseEndedCiWork(check, { issuer: issuer(url), claims }, now), url).resolves.toBeUndefined();
    }
    const onServer = { ended, deployment: githubDeploymentOf('https://GHES.acme.dev/api/v3') };
    await expect(refuseEndedCiWork(onServer, { issuer: issuer('https://ghes.acme.dev/_services/token'), claims }, now)).rejects.toMatchObject({
      reason: 'ci_work_ended',
    });
    await expect(refuseEndedCiWork(onServer, { issuer: issuer('https://token.actions.githubusercontent.com'), claims }, now)).resolves.toBeUndefined();
    const onTenant = { ended, deployment: githubDeploymentOf('https://api.acme.ghe.com') };
    await expect(refuseEndedCiWork(onTenant, { issuer: issuer('https://token.actions.acme.ghe.com'), claims }, now)).rejects.toMatchObject({
      reason: 'ci_work_ended',
    });
    // A host that only holds a tenant's host in its name is a deployment of its own, as any other host is.
    for (const url of [
      'https://token.actions.acme.ghe.com.evil.dev/_services/token',
      'https://api.acme.ghe.com.evil.dev/_services/token',
      'https://evil-token.actions.acme.ghe.com/_services/token',
    ]) {
      await expect(refuseEndedCiWork(onTenant, { issuer: issuer(url), claims }, now), url).resolves.toBeUndefined();
    }
  });

  it("keeps each GitHub deployment's completions apart: the same repository, run, check run and attempt of another are not ended", async () => {
    await ended.record('ghes-a.acme.dev', '734201', '1500', { kind: 'job', checkRunId: '15001', attempt: 1 }, 'delivery-11', now);
    await ended.record('ghes-a.acme.dev', '734201', '1600', { kind: 'run', attempt: 2 }, 'delivery-12', now);
    expect(await ended.hasEnded('ghes-a.acme.dev', job('15001', 1, '1500'), now)).toBe(true);
    expect(await ended.hasEnded('ghes-a.acme.dev', job('16001', 2, '1600'), now)).toBe(true);
    for (const other of ['ghes-b.acme.dev', 'github.com']) {
      expect(await ended.hasEnded(other, job('15001', 1, '1500'), now), other).toBe(false);
      expect(await ended.hasEnded(other, job('16001', 2, '1600'), now), other).toBe(false);
    }
    // Webhooks without an App, whose API URL is unknown: any GitHub Actions issuer's token is checked, against its own
    // deployment's completions alone.
    const claims = { repository_id: '734201', run_id: '1500', check_run_id: '15001', run_attempt: '1' };
    const issuer = (url: string) => resolveIssuer({ kind: 'github', url }, { allowHttpLoopback: false });
    const withoutApp = { ended, deployment: undefined };
    await expect(refuseEndedCiWork(withoutApp, { issuer: issuer('https://ghes-a.acme.dev/_services/token'), claims }, now)).rejects.toMatchObject({
      reason: 'ci_work_ended',
    });
    for (const url of ['https://ghes-b.acme.dev/_services/token', 'https://token.actions.githubusercontent.com']) {
      await expect(refuseEndedCiWork(withoutApp, { issuer: issuer(url), claims }, now), url).resolves.toBeUndefined();
    }
  });

  it("reads the App's deployment from an API URL whose host is written as a fully qualified name, with its final dot", async () => {
    for (const deployment of ['github.com', 'acme.ghe.com', 'ghes.acme.dev']) {
      await ended.record(deployment, '734201', '1400', { kind: 'job', checkRunId: '14001', attempt: 1 }, `delivery-10-${deployment}`, now);
    }
    const claims = { repository_id: '734201', run_id: '1400', check_run_id: '14001', run_attempt: '1' };
    const issuer = (url: string) => resolveIssuer({ kind: 'github', url }, { allowHttpLoopback: false });
    // The same host as without the dot: its jobs' ends are refused, not left to their TTL as another deployment's.
    for (const [api, url] of [
      ['https://api.github.com./', 'https://token.actions.githubusercontent.com'],
      ['https://api.acme.ghe.com.', 'https://token.actions.acme.ghe.com'],
      ['https://ghes.acme.dev./api/v3', 'https://ghes.acme.dev/_services/token'],
    ] as const) {
      const onApp = { ended, deployment: githubDeploymentOf(api) };
      await expect(refuseEndedCiWork(onApp, { issuer: issuer(url), claims }, now), api).rejects.toMatchObject({ reason: 'ci_work_ended' });
    }
  });

  it('reads a check run and an attempt only as GitHub writes them: a padded, trailing or over-long number names none', () => {
    const ids = { repository_id: '734201', run_id: '700' };
    expect(ciJobOf({ ...ids, check_run_id: '7001', run_attempt: '999999' })).toEqual(job('7001', 999_999));
    for (const odd of ['07001', '7001x', '7001 ', '0', '']) expect(ciJobOf({ ...ids, check_run_id: odd, run_attempt: odd })).toEqual(job(undefined, undefined));
    expect(ciJobOf({ ...ids, run_attempt: '1000000' }).runAttempt).toBeUndefined();
  });

  it("keeps a run's keys on one shard: they share their first hex digit", async () => {
    await ended.record('github.com', '734201', '1100', { kind: 'run', attempt: 3 }, 'delivery-6', now);
    await ended.record('github.com', '734201', '1100', { kind: 'job', checkRunId: '11001', attempt: 3 }, 'delivery-7', now);
    const keys = db.all<{ key: string }>("SELECT key FROM replay_claims WHERE audit_event_id IN ('webhook:delivery-6', 'webhook:delivery-7')");
    expect(keys).toHaveLength(4);
    expect(new Set(keys.map(({ key }) => key.slice(0, 1))).size).toBe(1);
    for (const { key } of keys) expect(key).toMatch(/^[0-9a-f]{64}$/);
  });
});
