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
    expect(await store.dueForEndedWork('501', '66', { kind: 'run', attempt: 1 }, now)).toBe(0);
    expect(await dueNow(now)).toEqual(['told-twice']);
    await store.remove('told-twice');
  });
});
