import type { PendingRevocation, RevocationStore } from '../features/github/app/revocation-store.ts';
import type { RunEnd } from '../core/claims/github-run.ts';
import type { SqlDatabase, SqlValue } from './sql-database.ts';

interface Row extends Record<string, string | number | null> {
  id: string;
  sealed_token: string;
  token_sha256: string;
  api_url: string;
  installation_id: number;
  revoke_at: number;
  github_expires_at: number;
  repository_id: string | null;
  run_id: string | null;
  check_run_id: string | null;
  run_attempt: number | null;
  actor_repository_id: string | null;
  actor_run_id: string | null;
  actor_check_run_id: string | null;
  actor_run_attempt: number | null;
  attempts: number;
  next_attempt_at: number;
}

/** The revocation schedule in the `github_token_revocations` table. */
export class SqliteRevocationStore implements RevocationStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async add(pending: PendingRevocation): Promise<void> {
    const actor = pending.actorJob;
    this.#db.run(
      `INSERT INTO github_token_revocations (id, sealed_token, token_sha256, api_url, installation_id, revoke_at, github_expires_at, repository_id, run_id, check_run_id, run_attempt,
                                             actor_repository_id, actor_run_id, actor_check_run_id, actor_run_attempt, attempts, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        pending.id,
        pending.sealedToken,
        pending.tokenSha256,
        pending.apiUrl,
        pending.installationId,
        pending.revokeAt,
        pending.githubExpiresAt,
        pending.repositoryId ?? null,
        pending.runId ?? null,
        pending.checkRunId ?? null,
        pending.runAttempt ?? null,
        actor?.repositoryId ?? null,
        actor?.runId ?? null,
        actor?.checkRunId ?? null,
        actor?.runAttempt ?? null,
        pending.attempts,
        pending.nextAttemptAt,
      ],
    );
  }

  async due(now: number, limit: number): Promise<PendingRevocation[]> {
    return this.#db.all<Row>('SELECT * FROM github_token_revocations WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?', [now, limit]).map(fromRow);
  }

  async nextAttemptAt(): Promise<number | undefined> {
    const [row] = this.#db.all<{ next: number | null }>('SELECT min(next_attempt_at) AS next FROM github_token_revocations');
    return row?.next ?? undefined;
  }

  async remove(id: string): Promise<void> {
    this.#db.run('DELETE FROM github_token_revocations WHERE id = ?', [id]);
  }

  async retry(id: string, attempts: number, nextAttemptAt: number): Promise<void> {
    this.#db.run('UPDATE github_token_revocations SET attempts = ?, next_attempt_at = ? WHERE id = ?', [attempts, nextAttemptAt, id]);
  }

  async dueForEndedWork(repositoryId: string, runId: string, ended: RunEnd, now: number): Promise<number> {
    // The subject's job or the actor's: one row per token, so a token whose two jobs both end is made due once.
    const [ofSubject, subjectValues] = endedJobOf('', repositoryId, runId, ended);
    const [ofActor, actorValues] = endedJobOf('actor_', repositoryId, runId, ended);
    // Claimed by its mark in this one statement, so ends told at once count a token once, whatever their clocks say; one
    // whose attempt is due already is not counted. Counted from RETURNING: a Durable Object's rowsWritten also counts
    // index entries.
    return this.#db.all<{ id: string }>(
      `UPDATE github_token_revocations SET next_attempt_at = ?, ended_by_work = 1
        WHERE (${ofSubject} OR ${ofActor}) AND ended_by_work = 0 AND next_attempt_at > ? RETURNING id`,
      [now, ...subjectValues, ...actorValues, now],
    ).length;
  }

  async dueForHandBack(tokenSha256: string, now: number): Promise<string | undefined> {
    const [row] = this.#db.all<{ id: string }>(
      `UPDATE github_token_revocations SET next_attempt_at = CASE WHEN attempts = 0 THEN min(next_attempt_at, ?) ELSE next_attempt_at END
        WHERE token_sha256 = ? RETURNING id`,
      [now, tokenSha256],
    );
    return row?.id;
  }
}

/** Whether the job a row keeps under the columns prefixed `prefix` (the subject's, or `actor_`) ends with what ended of this run. */
function endedJobOf(prefix: '' | 'actor_', repositoryId: string, runId: string, ended: RunEnd): [string, SqlValue[]] {
  const [checkRun, attempt] = [`${prefix}check_run_id`, `${prefix}run_attempt`];
  // A later attempt's tokens (a re-run already under way when an earlier attempt's end is told) are left alone.
  const [ofAttempt, attempts]: [string, SqlValue[]] = ended.attempt === undefined ? ['1', []] : [`(${attempt} IS NULL OR ${attempt} <= ?)`, [ended.attempt]];
  // For a job, a token of another job of the run is left alone; one without a check run cannot be told apart, so any
  // job's end (of its attempt or a later one) takes it. `check_run_id = NULL` is never true: with no check run named,
  // only those without one are due.
  const [which, values]: [string, SqlValue[]] =
    ended.kind === 'job'
      ? [` AND (${checkRun} = ? OR (${checkRun} IS NULL AND ${ofAttempt}))`, [ended.checkRunId ?? null, ...attempts]]
      : [` AND ${ofAttempt}`, attempts];
  return [`(${prefix}repository_id = ? AND ${prefix}run_id = ?${which})`, [repositoryId, runId, ...values]];
}

function fromRow(row: Row): PendingRevocation {
  return {
    id: row.id,
    sealedToken: row.sealed_token,
    tokenSha256: row.token_sha256,
    apiUrl: row.api_url,
    installationId: row.installation_id,
    revokeAt: row.revoke_at,
    githubExpiresAt: row.github_expires_at,
    repositoryId: row.repository_id ?? undefined,
    runId: row.run_id ?? undefined,
    checkRunId: row.check_run_id ?? undefined,
    runAttempt: row.run_attempt ?? undefined,
    actorJob:
      row.actor_repository_id === null && row.actor_run_id === null
        ? undefined
        : {
            repositoryId: row.actor_repository_id ?? undefined,
            runId: row.actor_run_id ?? undefined,
            checkRunId: row.actor_check_run_id ?? undefined,
            runAttempt: row.actor_run_attempt ?? undefined,
          },
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
  };
}
