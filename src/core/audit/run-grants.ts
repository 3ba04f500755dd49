import type { AuditEvent } from './audit-event.ts';
import { claimText, runAttemptOf } from '../claims/github-run.ts';

/**
 * A keyway token granted to a CI job, as the index beside the audit log keeps it (table `audit_run_grants`), written in
 * the transaction that appends the grant's record: what the end of the job or of its run (the `workflow_job` and
 * `workflow_run` webhooks) finds and revokes, by the ids the webhook names rather than by paging the log. A delegated
 * grant has a row for its subject's run and one for its actor's (`actor.run`), so the end of either job ends it. Kept
 * until the token no longer verifies.
 */
export interface RunGrant {
  /** The grant's audit record. */
  readonly auditEventId: string;
  /**
   * Whose run this row is: the subject token's, or a delegated grant's actor token's. A record's rows are keyed by run and
   * role, so an actor naming the subject's run ids has a row of its own when it is of another issuer.
   */
  readonly role: RunGrantRole;
  /**
   * The verified issuer of the token whose run this is (the subject's, or the actor's), as recorded (null for a row
   * indexed before schema 15 whose record was gone): only a GitHub Actions issuer's grants end with a GitHub Actions job,
   * another issuer's claims naming the same ids or not.
   */
  readonly issuer: string | null;
  /**
   * The kind of issuer that verified that token (its preset: `github` for a GitHub Actions issuer), as recorded at the
   * grant: what the end of a GitHub Actions job reads, whether the policies still trust the issuer or not. Null for a row
   * indexed before schema 19, whose record did not say.
   */
  readonly issuerKind: string | null;
  readonly repositoryId: string;
  readonly runId: string;
  /** The `check_run_id` and `run_attempt` claims as recorded (null when absent): read as `ciJobOf` reads them. */
  readonly checkRunId: string | null;
  readonly runAttempt: string | null;
  readonly jti: string;
  /** The token's `exp`, seconds since the epoch. */
  readonly exp: number;
}

export type RunGrantRole = 'subject' | 'actor';

/** What a record keeps of a verified actor token's run ids (`actor.run`): its claims as text, as `claimText` reads them. */
export interface RecordedRun {
  readonly repository_id: string;
  readonly run_id: string;
  readonly check_run_id?: string;
  readonly run_attempt?: string;
}

/** The run ids of a verified token's claims, if it names a run (`repository_id` and `run_id`); unbounded: the record's bounds cut them. */
export function recordedRunOf(claims: Readonly<Record<string, unknown>>): RecordedRun | undefined {
  const [repositoryId, runId] = [claimText(claims['repository_id']), claimText(claims['run_id'])];
  if (repositoryId === undefined || runId === undefined) return undefined;
  const [checkRunId, runAttempt] = [claimText(claims['check_run_id']), claimText(claims['run_attempt'])];
  return {
    repository_id: repositoryId,
    run_id: runId,
    ...(checkRunId === undefined ? {} : { check_run_id: checkRunId }),
    ...(runAttempt === undefined ? {} : { run_attempt: runAttempt }),
  };
}

/**
 * The rows an audit event indexes of a keyway token granted to CI runs: one for the subject's run (its `repository_id`
 * and `run_id` claims), and for a delegated exchange one for the actor's (`actor.run`), each with its own issuer and its
 * kind. An actor of the subject's own issuer and run is folded into the subject's row (`folded`); one of another issuer naming the
 * same ids keeps its own row, for only one of the two can be the run a GitHub Actions job's end names.
 */
export function runGrantsOf(event: AuditEvent): RunGrant[] {
  const { issued } = event;
  // Read from events another process sent too (checkedCanonicalEvent): only members of the right types index.
  if (event.decision !== 'granted' || event.reason !== 'granted' || typeof issued?.jti !== 'string' || typeof issued.exp !== 'number') return [];
  const token = { auditEventId: event.id, jti: issued.jti, exp: issued.exp };
  const subject = runGrant(token, 'subject', { issuer: event.issuer, kind: event.issuer_kind }, event.claims);
  const actor = runGrant(token, 'actor', { issuer: member(event.actor, 'issuer'), kind: member(event.actor, 'issuer_kind') }, member(event.actor, 'run'));
  if (subject === undefined || actor === undefined) return [subject, actor].filter((grant) => grant !== undefined);
  const ofSubjectsRun =
    subject.issuer === actor.issuer && subject.issuerKind === actor.issuerKind && subject.repositoryId === actor.repositoryId && subject.runId === actor.runId;
  return ofSubjectsRun ? [folded(subject, actor)] : [subject, actor];
}

/** A member of what may be an object (a record another process sent may hold anything where an object belongs). */
const member = (value: unknown, name: string): unknown => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined);

function runGrant(
  token: Pick<RunGrant, 'auditEventId' | 'jti' | 'exp'>,
  role: RunGrantRole,
  verifiedBy: { readonly issuer: unknown; readonly kind: unknown },
  claims: unknown,
): RunGrant | undefined {
  const read = (name: string): string | undefined => claimText(member(claims, name));
  const [repositoryId, runId] = [read('repository_id'), read('run_id')];
  if (repositoryId === undefined || runId === undefined) return undefined;
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  return {
    ...token,
    role,
    issuer: text(verifiedBy.issuer),
    issuerKind: text(verifiedBy.kind),
    repositoryId,
    runId,
    checkRunId: read('check_run_id') ?? null,
    runAttempt: read('run_attempt') ?? null,
  };
}

/**
 * The one row of a grant whose actor is of the subject's issuer and run. Naming another job of it: the end of any job of
 * the run from the earlier attempt on ends it (as a token without `check_run_id` is ended), so neither job outlives it.
 */
function folded(subject: RunGrant, actor: RunGrant): RunGrant {
  if (subject.checkRunId === actor.checkRunId && subject.runAttempt === actor.runAttempt) return subject;
  const [ofSubject, ofActor] = [runAttemptOf(subject.runAttempt), runAttemptOf(actor.runAttempt)];
  const earlier = ofSubject === undefined || ofActor === undefined ? null : ofSubject <= ofActor ? subject.runAttempt : actor.runAttempt;
  return { ...subject, checkRunId: null, runAttempt: earlier };
}
