import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CiJob } from '../../src/core/claims/github-run.ts';
import type { PendingRevocation } from '../../src/features/github/app/revocation-store.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteRevocationStore } from '../../src/storage/sqlite-revocation-store.ts';

/**
 * Which scheduled GitHub tokens the end of a job or of a run's attempt makes due (dueForEndedWork), in a real SQLite file:
 * the cases the broker's own tokens rarely reach (an actor of another repository, a token without run_attempt).
 */
describe('the GitHub token revocation schedule at the end of CI work', () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-revocation-schedule-')), 'keyway.db'));
  migrate(db);
  const store = new SqliteRevocationStore(db);
  afterAll(() => db.close());
  const later = Date.now() + 600_000;
  const job = (repositoryId: string, runId: string, checkRunId: string | undefined, runAttempt: number | undefined): CiJob => ({
    repositoryId,
    runId,
    checkRunId,
    runAttempt,
  });
  /** A token scheduled for revocation at its TTL, `later`, of the subject's job and, if delegated, the actor's. */
  const schedule = async (id: string, subject: CiJob, actorJob?: CiJob) => {
    const pending: PendingRevocation = {
      id,
      sealedToken: 'sealed',
      tokenSha256: id,
      apiUrl: 'https://api.github.com',
      installationId: 71,
      revokeAt: later,
      githubExpiresAt: later + 3_000_000,
      ...subject,
      actorJob,
      attempts: 0,
      nextAttemptAt: later,
    };
    await store.add(pending);
  };
  const dueNow = async (now: number) => (await store.due(now, 100)).map((row) => row.id).sort();

  it("makes a delegated token due by its actor's job in another repository, or by its subject's, once", async () => {
    const now = Date.now();
    await schedule('across-repositories', job('501', '61', '611', 1), job('502', '62', '621', 1));
    // The actor's run id in the subject's repository, or the subject's in the actor's: another run.
    expect(await store.dueForEndedWork('501', '62', { kind: 'job', checkRunId: '621', attempt: 1 }, now)).toBe(0);
    expect(await store.dueForEndedWork('502', '61', { kind: 'job', checkRunId: '611', attempt: 1 }, now)).toBe(0);
    expect(await store.dueForEndedWork('502', '62', { kind: 'run', attempt: 1 }, now)).toBe(1);
    expect(await dueNow(now)).toEqual(['across-repositories']);
    // Its subject's job ends too: already due, it is not counted again.
    expect(await store.dueForEndedWork('501', '61', { kind: 'job', checkRunId: '611', attempt: 1 }, now)).toBe(0);
    await store.remove('across-repositories');
  });

  it('makes due a token without run_attempt (an older GHES) at the end of any attempt of its run, and of any job of it', async () => {
    const now = Date.now();
    await schedule('no-attempt', job('501', '63', undefined, undefined));
    await schedule('no-attempt-actor', job('501', '64', '641', 1), job('502', '65', undefined, undefined));
    expect(await store.dueForEndedWork('501', '63', { kind: 'run', attempt: 3 }, now)).toBe(1);
    expect(await store.dueForEndedWork('502', '65', { kind: 'job', checkRunId: '651', attempt: 2 }, now)).toBe(1);
    expect(await dueNow(now)).toEqual(['no-attempt', 'no-attempt-actor']);
    await store.remove('no-attempt');
    await store.remove('no-attempt-actor');
  });

  it('counts only the tokens it made due: the same end told again before the round finds none', async () => {
    const now = Date.now();
    await schedule('told-twice', job('501', '66', '661', 1));
    expect(await store.dueForEndedWork('501', '66', { kind: 'job', checkRunId: '661', attempt: 1 }, now)).toBe(1);
    expect(await store.dueForEndedWork('501', '66', { kind: 'job', checkRunId: '661', attempt: 1 }, now)).toBe(0);
    // Told by a broker whose clock is behind: its now is before the attempt the first made due, and it is still not counted.
    expect(await store.dueForEndedWork('501', '66', { kind: 'job', checkRunId: '661', attempt: 1 }, now - 1000)).toBe(0);
    expect(await store.dueForEndedWork('501', '66', { kind: 'run', attempt: 1 }, now)).toBe(0);
    expect(await dueNow(now)).toEqual(['told-twice']);
    await store.remove('told-twice');
  });

  it("leaves a later attempt's token to its own end: the subject's or the actor's, of a job or of the run", async () => {
    const now = Date.now();
    await schedule('re-run', job('501', '69', '691', 2), job('502', '70', '701', 3));
    expect(await store.dueForEndedWork('501', '69', { kind: 'run', attempt: 1 }, now)).toBe(0);
    expect(await store.dueForEndedWork('502', '70', { kind: 'run', attempt: 2 }, now)).toBe(0);
    expect(await store.dueForEndedWork('502', '70', { kind: 'job', checkRunId: '701', attempt: 2 }, now)).toBe(1);
    expect(await dueNow(now)).toEqual(['re-run']);
    await store.remove('re-run');
  });

  it('counts no token whose attempt is due already at the end it is told, to the millisecond', async () => {
    await schedule('due-already', job('501', '67', '671', 1));
    expect(await store.dueForEndedWork('501', '67', { kind: 'job', checkRunId: '671', attempt: 1 }, later)).toBe(0);
    expect(await store.dueForEndedWork('501', '67', { kind: 'job', checkRunId: '671', attempt: 1 }, later - 1)).toBe(1);
    await store.remove('due-already');
  });
});

describe('the GitHub token revocation schedule', () => {
  const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-revocation-due-')), 'keyway.db'));
  migrate(db);
  const store = new SqliteRevocationStore(db);
  afterAll(() => db.close());
  const t = 1_800_000_000_000;
  const pending = (id: string, nextAttemptAt: number): PendingRevocation => ({
    id,
    sealedToken: 'sealed',
    tokenSha256: id,
    apiUrl: 'https://api.github.com',
    installationId: 71,
    revokeAt: nextAttemptAt,
    githubExpiresAt: t + 3_600_000,
    repositoryId: '501',
    runId: '68',
    checkRunId: undefined,
    runAttempt: undefined,
    actorJob: undefined,
    attempts: 0,
    nextAttemptAt,
  });
  const ids = (rows: readonly PendingRevocation[]) => rows.map((row) => row.id);

  it('answers the rows due by now, oldest first, at most the limit; wakes for the earliest; moves a retried row to its next attempt', async () => {
    expect(await store.nextAttemptAt()).toBeUndefined();
    for (const [id, at] of [
      ['third', t + 2000],
      ['first', t],
      ['second', t + 1000],
    ] as const)
      await store.add(pending(id, at));
    expect(await store.nextAttemptAt()).toBe(t);
    expect(ids(await store.due(t - 1, 100))).toEqual([]);
    expect(ids(await store.due(t + 1000, 100))).toEqual(['first', 'second']);
    expect(ids(await store.due(t + 2000, 2))).toEqual(['first', 'second']);
    await store.retry('first', 3, t + 5000);
    expect(ids(await store.due(t + 2000, 100))).toEqual(['second', 'third']);
    expect(await store.due(t + 5000, 100)).toMatchObject([{ id: 'second' }, { id: 'third' }, { id: 'first', attempts: 3, nextAttemptAt: t + 5000 }]);
    await store.remove('second');
    expect(ids(await store.due(t + 5000, 100))).toEqual(['third', 'first']);
    expect(await store.nextAttemptAt()).toBe(t + 2000);
  });

  it("makes a token handed back due now by its SHA-256 and names its row; one already tried keeps its backoff; an unknown one is no one's", async () => {
    const mine = async (now: number) => (await store.due(now, 100)).filter((row) => row.id === 'handed-back' || row.id === 'tried');
    await store.add(pending('handed-back', t + 600_000));
    await store.add(pending('tried', t + 600_000));
    await store.retry('tried', 2, t + 20_000);
    expect(await store.dueForHandBack('handed-back', t)).toBe('handed-back');
    expect(await store.dueForHandBack('tried', t)).toBe('tried');
    expect(await store.dueForHandBack('no-such-token', t)).toBeUndefined();
    expect(await mine(t)).toMatchObject([{ id: 'handed-back', attempts: 0, nextAttemptAt: t }]);
    // Handed back again by a broker whose clock is ahead: not put off.
    expect(await store.dueForHandBack('handed-back', t + 1000)).toBe('handed-back');
    expect(await mine(t)).toMatchObject([{ id: 'handed-back', nextAttemptAt: t }]);
    expect(await mine(t + 20_000)).toMatchObject([{ id: 'handed-back' }, { id: 'tried', attempts: 2, nextAttemptAt: t + 20_000 }]);
  });
});
