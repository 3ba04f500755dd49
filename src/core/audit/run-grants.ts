import type { AuditEvent } from './audit-event.ts';
import { claimText } from '../claims/github-run.ts';

/**
 * A keyway token granted to a CI job, as the index beside the audit log keeps it (table `keyway_run_grants`), written in
 * the transaction that appends the grant's record: what the end of the job or of its run (the `workflow_job` and
 * `workflow_run` webhooks) finds and revokes, by the ids the webhook names rather than by paging the log. Kept until the
 * token no longer verifies.
 */
export interface RunGrant {
  /** The grant's audit record. */
  readonly auditEventId: string;
  /**
   * The subject token's verified issuer, as recorded (null for a row indexed before schema 15 whose record was gone): only
   * a GitHub Actions issuer's grants end with a GitHub Actions job, another issuer's claims naming the same ids or not.
   */
  readonly issuer: string | null;
  readonly repositoryId: string;
  readonly runId: string;
  /** The `check_run_id` and `run_attempt` claims as recorded (null when absent): read as `ciJobOf` reads them. */
  readonly checkRunId: string | null;
  readonly runAttempt: string | null;
  readonly jti: string;
  /** The token's `exp`, seconds since the epoch. */
  readonly exp: number;
}

/** The grant an audit event records of a keyway token to a CI run (`repository_id` and `run_id` claims), if it is one. */
export function runGrantOf(event: AuditEvent): RunGrant | undefined {
  const claims = event.claims ?? {};
  const [repositoryId, runId] = [claimText(claims['repository_id']), claimText(claims['run_id'])];
  const { issued } = event;
  // Read from events another process sent too (checkedCanonicalEvent): only a jti and an exp of the right types index.
  if (event.decision !== 'granted' || event.reason !== 'granted' || typeof issued?.jti !== 'string' || typeof issued.exp !== 'number') return undefined;
  if (repositoryId === undefined || runId === undefined) return undefined;
  return {
    auditEventId: event.id,
    issuer: typeof event.issuer === 'string' ? event.issuer : null,
    repositoryId,
    runId,
    checkRunId: claimText(claims['check_run_id']) ?? null,
    runAttempt: claimText(claims['run_attempt']) ?? null,
    jti: issued.jti,
    exp: issued.exp,
  };
}
