import type { RunEnd } from '../../../core/claims/github-run.ts';
import type { GitHubTokenJobs } from '../../../core/exchange/ports.ts';

/**
 * A GitHub token keyway minted and must revoke, the token itself only ever sealed, with the CI job that obtained it and,
 * for a delegated exchange, its actor's (whose end revokes it early).
 */
export interface PendingRevocation extends GitHubTokenJobs {
  /** The audit event id of the exchange that minted it. */
  readonly id: string;
  /** SecretBox-sealed (purpose `github-token`, context `id` and `apiUrl`: githubTokenContext). */
  readonly sealedToken: string;
  readonly tokenSha256: string;
  /** The API the token belongs to: revocation needs no App key, only the token and this. */
  readonly apiUrl: string;
  readonly installationId: number;
  /** When the policy's TTL passes, ms since the epoch. */
  readonly revokeAt: number;
  /** When GitHub expires it anyway: past this there is nothing left to revoke. */
  readonly githubExpiresAt: number;
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
   * The subject's job or the actor's: a token either names is ended, once, whichever ends first. Each token is counted by
   * one call only, however many are made at once and whatever their `now`.
   */
  dueForEndedWork(repositoryId: string, runId: string, ended: RunEnd, now: number): Promise<number>;
  /**
   * Its holder handed back the token with this SHA-256 (`POST /revoke`): makes it due at `now`, unless an attempt to revoke
   * it already failed (it keeps its backoff), and returns its id; undefined when no such token is pending.
   */
  dueForHandBack(tokenSha256: string, now: number): Promise<string | undefined>;
}
