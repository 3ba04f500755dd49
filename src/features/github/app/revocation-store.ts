import type { RunEnd } from '../../../core/claims/github-run.ts';

/** A GitHub token keyway minted and must revoke: the token itself only ever sealed. */
export interface PendingRevocation {
  /** The audit event id of the exchange that minted it. */
  readonly id: string;
  /** SecretBox-sealed (purpose `github-token`, context `id`). */
  readonly sealedToken: string;
  readonly tokenSha256: string;
  /** The API the token belongs to: revocation needs no App key, only the token and this. */
  readonly apiUrl: string;
  readonly installationId: number;
  /** When the policy's TTL passes, ms since the epoch. */
  readonly revokeAt: number;
  /** When GitHub expires it anyway: past this there is nothing left to revoke. */
  readonly githubExpiresAt: number;
  /** The CI run that obtained it (`repository_id`, `run_id` claims), for revocation when its job ends. */
  readonly repositoryId: string | undefined;
  readonly runId: string | undefined;
  /** The job of that run (`check_run_id` claim, its check run): undefined when the token had none (older GHES). */
  readonly checkRunId: string | undefined;
  /** The run's attempt (`run_attempt` claim): undefined when the token had none. */
  readonly runAttempt: number | undefined;
  readonly attempts: number;
  readonly nextAttemptAt: number;
}

/**
 * The revocation schedule: persisted, so a restart keeps it. Written once over SqlDatabase
 * (src/storage/sqlite-revocation-store.ts); on Workers it runs inside KeywayState.
 */
export interface RevocationStore {
  add(pending: PendingRevocation): Promise<void>;
  /** Rows whose next attempt is due, oldest first. */
  due(now: number, limit: number): Promise<PendingRevocation[]>;
  /** The earliest next attempt, if any row is pending. */
  nextAttemptAt(): Promise<number | undefined>;
  /** Revoked (or nothing left to revoke): the sealed token goes. */
  remove(id: string): Promise<void>;
  /** A failed attempt: try again at `nextAttemptAt`. */
  retry(id: string, attempts: number, nextAttemptAt: number): Promise<void>;
  /**
   * Something of this CI run ended: makes due at `now` the tokens it ends, and returns how many. A job (its check run,
   * undefined when unknown) ends the run's tokens of that job and those of the run with no check run; the run ends all.
   */
  dueForRun(repositoryId: string, runId: string, ended: RunEnd, now: number): Promise<number>;
}
