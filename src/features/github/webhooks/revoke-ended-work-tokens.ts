import type { AuditEvent, AuditLog } from '../../../core/audit/audit-event.ts';
import { ciJobOf, isGitHubActionsOf, type CiJob, type RunEnd } from '../../../core/claims/github-run.ts';
import { appendExaminations, examinationRecord } from '../../../core/revocation/examine-token.ts';
import type { RevocationList } from '../../../core/revocation/revocation-list.ts';
import type { RunGrant } from '../../../core/audit/run-grants.ts';
import type { IssuerDirectory } from '../../../core/verify/verify-subject-token.ts';

export interface EndedWorkTokenDeps {
  readonly issuer: string;
  /**
   * The issuers the broker trusts now (the central policy set), for a grant indexed before schema 19 alone: its row does
   * not say which kind of issuer verified the token, so the policies' kind of it now stands in, as before.
   */
  readonly issuers: () => Pick<IssuerDirectory, 'issuer'>;
  readonly audit: AuditLog;
  readonly revocations: RevocationList;
  readonly now: () => number;
}

/**
 * How long a delivery holds the right to record and revoke a token it found live: far longer than GitHub waits for its
 * answer (10 s). One that fails meanwhile (the audit log down) does not hide its tokens for that long: see settleTakenElsewhere.
 */
const REVOCATION_LEASE_SECONDS = 60;

/** How long a delivery waits for the tokens another took first to be revoked, before it revokes them itself: about 2 s. */
const TAKEN_ELSEWHERE_WAIT = { rounds: 20, pollMs: 100 } as const;

/** What of a GitHub Actions run completed, as the `workflow_job` or `workflow_run` webhook names it. */
export interface RunWorkEnded {
  /**
   * The GitHub deployment the run is of (`githubDeploymentOf` its repository's REST URL): its repository and run ids are of
   * that deployment's counters, and name no other's run.
   */
  readonly deployment: string;
  readonly repositoryId: string;
  readonly runId: string;
  /**
   * A job (`workflow_job`): its id, for the records, and its check run's (the last segment of the payload's
   * `check_run_url`), what the `check_run_id` claim of the tokens it obtained holds, undefined when the payload has
   * no usable one. The whole run (`workflow_run`): undefined.
   */
  readonly job: { readonly id: string; readonly checkRunId: string | undefined } | undefined;
  /** The run's attempt that ended (`run_attempt`): a later one's tokens (a re-run already under way) stay. */
  readonly runAttempt: number | undefined;
  /** The webhook delivery, for the records. */
  readonly deliveryId: string;
}

/** What a delivery did to the keyway tokens of what ended. */
export interface EndedWorkRevocations {
  /** How many it revoked: wrote the revocation of, each under a record. */
  readonly revoked: number;
  /**
   * Of those, how many under the record another delivery wrote first (it had reserved them, then did not revoke them): no
   * record of this delivery's names them, the other's does.
   */
  readonly underAnotherRecord: number;
}

const NONE_REVOKED: EndedWorkRevocations = { revoked: 0, underAnotherRecord: 0 };

/** What ended, as the revocation schedule takes it. */
export function runEnd(ended: RunWorkEnded): RunEnd {
  return ended.job === undefined ? { kind: 'run', attempt: ended.runAttempt } : { kind: 'job', checkRunId: ended.job.checkRunId, attempt: ended.runAttempt };
}

/**
 * Whether a token granted to this job (its verified claims, `ciJobOf`) ends with what ended: same `repository_id` and `run_id`, and for
 * a job its own `check_run_id`. A token without one (GitHub Enterprise Server releases whose tokens lack it) cannot be
 * told apart from the run's other jobs: the end of any job of its run (of its attempt or a later one) ends it, as before
 * the claim existed. A job whose check run is unknown ends only those. The end of an attempt of the run ends them all but
 * a later attempt's.
 */
function endsWith(job: CiJob, ended: RunWorkEnded): boolean {
  if (job.repositoryId !== ended.repositoryId || job.runId !== ended.runId) return false;
  const ofAttempt = ended.runAttempt === undefined || job.runAttempt === undefined || job.runAttempt <= ended.runAttempt;
  if (ended.job === undefined) return ofAttempt;
  return job.checkRunId === undefined ? ofAttempt : job.checkRunId === ended.job.checkRunId;
}

/** What the records say ended: `the workflow job 96193868770 of run 32291736541 completed`, `the workflow run 32291736541 completed`. */
export function whatEnded(ended: RunWorkEnded): string {
  return ended.job === undefined ? `the workflow run ${ended.runId} completed` : `the workflow job ${ended.job.id} of run ${ended.runId} completed`;
}

/**
 * Revokes every live keyway access token granted to what ended (a job, or the whole run), found in the index of grants by
 * run the audit log keeps (`grantsOfRun`: by the run's `repository_id` and `run_id`, so neither how many grants the
 * repository has had since nor a rename or transfer of it hides one), those whose recorded claims end with it
 * (`endsWith`): the subject's, or a delegated grant's actor's. For a job, the tokens of the run's other jobs stay live. Each revocation has its record, durable before any
 * revocation is written; a token already revoked (by an earlier job of the run, or `POST /revoke`) is left alone, without
 * another. Returns how many this delivery revoked, and how many of them under another delivery's record.
 */
export async function revokeEndedWorkTokens(deps: EndedWorkTokenDeps, ended: RunWorkEnded): Promise<EndedWorkRevocations> {
  const now = deps.now();
  // Still verifiable (exp and the skew tolerated beyond it): worth revoking. Not only the work's own: what ended takes
  // tokens of earlier attempts, and of the run's other jobs without check_run_id, granted before it started.
  const issuers = deps.issuers();
  // Another issuer's claims may name the same ids (an operator's own OIDC issuer can put anything in repository_id and
  // run_id), and so may another GitHub deployment's (its own counters): those are not the ids this GitHub gave the run. Which
  // kind of issuer verified the token is read as the grant recorded it, not from the policies now: trust removed since (an
  // incident, a policy dropped) leaves it to be revoked.
  const endedWith = (await deps.audit.grantsOfRun(ended.repositoryId, ended.runId, now)).filter((grant) => {
    const kind = grant.issuerKind ?? (grant.issuer === null ? undefined : issuers.issuer(grant.issuer)?.preset.name);
    const claims = { repository_id: grant.repositoryId, run_id: grant.runId, check_run_id: grant.checkRunId, run_attempt: grant.runAttempt };
    return isGitHubActionsOf(ended.deployment, { url: grant.issuer, kind }) && endsWith(ciJobOf(claims), ended);
  });
  // A delegated grant's subject and actor, each verified by a GitHub issuer, may both name what ended: its token is
  // revoked once.
  const live = [...new Map(endedWith.map((grant) => [grant.jti, grant])).values()];
  const revokedBefore = await deps.revocations.areRevoked(
    live.map((token) => token.jti),
    now,
  );
  const candidates = live
    .filter((_, index) => !revokedBefore[index])
    .map((token) => ({
      token,
      record: examinationRecord(deps, {
        caller: { webhook: ended.job === undefined ? 'workflow_run' : 'workflow_job' },
        reason: 'token_revoked',
        detail: `revoked keyway token ${token.jti}: ${whatEnded(ended)}`,
        context: { requestId: ended.deliveryId, clientIp: undefined, userAgent: undefined },
        now,
      }),
    }));
  if (candidates.length === 0) return NONE_REVOKED;
  // A job's delivery and its run's (or two jobs' of a run, for tokens without check_run_id) may arrive at once and both
  // find a token not yet revoked: one of them takes it, and alone records and revokes it.
  const reserved = await deps.revocations.reserve(
    candidates.map(({ token, record }) => ({ jti: token.jti, auditEventId: record.id })),
    REVOCATION_LEASE_SECONDS,
    now,
  );
  const elsewhere = candidates.flatMap((candidate, index) => {
    const reservation = reserved[index];
    return reservation === undefined || reservation.taken ? [] : [{ candidate, auditEventId: reservation.auditEventId }];
  });
  const revoked = await recordAndRevoke(
    deps,
    candidates.filter((_, index) => reserved[index]?.taken === true),
    now,
  );
  const settled = await settleTakenElsewhere(deps, elsewhere, now);
  return { revoked: revoked + settled.revoked, underAnotherRecord: settled.underAnotherRecord };
}

/** A token found live and to be revoked by this delivery, with the record of its revocation. */
interface Candidate {
  readonly token: RunGrant;
  readonly record: AuditEvent;
}

/**
 * Records the revocation of each token, then revokes them. A job may hold thousands of tokens and GitHub waits 10 s for the
 * delivery's answer: their records are appended together, then the revocations written together, each only once every
 * record is durable. Returns how many.
 */
async function recordAndRevoke(deps: EndedWorkTokenDeps, ending: readonly Candidate[], now: number): Promise<number> {
  if (ending.length === 0) return 0;
  const ids = await appendExaminations(
    deps,
    ending.map(({ record }) => record),
  );
  await deps.revocations.revokeAll(
    ending.map(({ token }, index) => ({ jti: token.jti, exp: token.exp, auditEventId: ids[index] as string })),
    now,
  );
  return ending.length;
}

/**
 * The tokens another delivery reserved first (a job's and its run's arriving at once), which it records and revokes. It may
 * have failed on the way (the audit log or the revocation list down, answered 503): its lease would then keep every other
 * delivery from them for a minute, the run's end (the backstop of its jobs') and a redelivery of its own included, each
 * answered as handled with the tokens live, and GitHub sends no failed delivery again by itself. So this delivery waits a
 * while for them to be revoked, and revokes those that are not by then itself: under the other's record where it was
 * written, else recorded as its own (a taker slower than the wait, not failed, records such a token twice). Returns how
 * many it revoked, and how many of them under the other's record.
 */
async function settleTakenElsewhere(
  deps: EndedWorkTokenDeps,
  taken: readonly { readonly candidate: Candidate; readonly auditEventId: string }[],
  now: number,
): Promise<EndedWorkRevocations> {
  let waiting = taken;
  for (let round = 0; waiting.length > 0 && round < TAKEN_ELSEWHERE_WAIT.rounds; round += 1) {
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, TAKEN_ELSEWHERE_WAIT.pollMs));
    const revoked = await deps.revocations.areRevoked(
      waiting.map(({ candidate }) => candidate.token.jti),
      now,
    );
    waiting = waiting.filter((_, index) => !revoked[index]);
  }
  if (waiting.length === 0) return NONE_REVOKED;
  const recorded = await Promise.all(waiting.map(({ auditEventId }) => deps.audit.get(auditEventId)));
  const unrevoked = waiting.filter((_, index) => recorded[index] !== undefined);
  if (unrevoked.length > 0) {
    await deps.revocations.revokeAll(
      unrevoked.map(({ candidate, auditEventId }) => ({ jti: candidate.token.jti, exp: candidate.token.exp, auditEventId })),
      now,
    );
  }
  const recordedHere = await recordAndRevoke(
    deps,
    waiting.filter((_, index) => recorded[index] === undefined).map(({ candidate }) => candidate),
    now,
  );
  return { revoked: recordedHere + unrevoked.length, underAnotherRecord: unrevoked.length };
}
