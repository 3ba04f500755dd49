import { ciJobOf, githubDeploymentOf, isGitHubActionsOf, type CiJob, type RunEnd } from '../claims/github-run.ts';
import { ExchangeError } from '../errors/exchange-error.ts';
import { sha256Hex } from '../mint/sha256-hex.ts';
import type { HoldsKey, ReplayGuard } from './replay-guard.ts';
import type { TrustedIssuer } from '../verify/trusted-issuer.ts';

/**
 * The GitHub Actions jobs and run attempts that completed (the `workflow_job` and `workflow_run` webhooks), so an OIDC
 * token of one is refused afterwards, at /token and at /proxy: a job's token verifies for minutes after it was issued, and one
 * copied out of a finished job (a log, an artifact, a compromised step) must not buy a token then. Only what is known
 * exactly refuses: a job by its check run (`check_run_id`), a run by its attempt (`run_attempt`); a token without those
 * claims, or a completion without them, refuses nothing, since "any job of the run" would cut off the run's other jobs.
 * Each is of a GitHub deployment (`githubDeploymentOf`): each numbers its repositories and runs from its own counters, so
 * one's completion names no other's job of the same numbers.
 */
export interface EndedCiWork {
  /** Records what ended in a run of `deployment`; resolves once durable. Recording it again changes nothing. */
  record(deployment: string, repositoryId: string, runId: string, ended: RunEnd, deliveryId: string, now: number): Promise<void>;
  /** Whether the job a verified token of `deployment`'s issuer names, or its run's attempt, completed. */
  hasEnded(deployment: string, job: CiJob, now: number): Promise<boolean>;
}

/**
 * How long a completion is remembered: longer than any GitHub Actions OIDC token lives (GitHub issues them for
 * minutes), so every token issued before its job ended has expired by the time the record goes.
 */
export const ENDED_CI_WORK_SECONDS = 60 * 60;
/** A run's re-runs each end as their own attempt; the end of attempt N marks this many before it too, for a delivery that never came. */
const EARLIER_ATTEMPTS = 9;

/**
 * Keys in the replay guard's store (lower-case hex, apart from every other key by their text). The first digit is the
 * run's, so a run's keys land on one Workers shard, whichever of them a token asks for. A deployment is a host name, which
 * holds no line break.
 */
function endedKey(deployment: string, repositoryId: string, runId: string, what: string): string {
  const run = `${deployment}\n${repositoryId}\n${runId}`;
  return sha256Hex(`ended-ci-run\n${run}`).slice(0, 1) + sha256Hex(`ended-ci-work\n${run}\n${what}`).slice(1);
}

/** A run's keys: of one job by its check run, of one attempt; and those of an attempt's end, its own and the EARLIER_ATTEMPTS before it (none for an attempt not named). */
function runKeys(deployment: string, repositoryId: string, runId: string) {
  const job = (checkRunId: string): string => endedKey(deployment, repositoryId, runId, `job\n${checkRunId}`);
  const attempt = (number: number): string => endedKey(deployment, repositoryId, runId, `attempt\n${number}`);
  const attemptEnd = (number: number | undefined): string[] =>
    number === undefined ? [] : Array.from({ length: Math.min(number, EARLIER_ATTEMPTS + 1) }, (_, back) => attempt(number - back));
  return { job, attempt, attemptEnd };
}

export function endedCiWork(guard: ReplayGuard, holds: HoldsKey): EndedCiWork {
  return {
    record: async (deployment, repositoryId, runId, ended, deliveryId, now) => {
      const run = runKeys(deployment, repositoryId, runId);
      const keys = ended.kind === 'job' ? (ended.checkRunId === undefined ? [] : [run.job(ended.checkRunId)]) : run.attemptEnd(ended.attempt);
      const expiresAt = Math.floor(now / 1000) + ENDED_CI_WORK_SECONDS;
      await Promise.all(keys.map((key) => guard.claim({ key, expiresAt, auditEventId: `webhook:${deliveryId}`, now })));
    },
    hasEnded: async (deployment, { repositoryId, runId, checkRunId, runAttempt }, now) => {
      if (repositoryId === undefined || runId === undefined) return false;
      const run = runKeys(deployment, repositoryId, runId);
      const keys = [...(checkRunId === undefined ? [] : [run.job(checkRunId)]), ...(runAttempt === undefined ? [] : [run.attempt(runAttempt)])];
      return (await Promise.all(keys.map((key) => holds(key, now)))).includes(true);
    },
  };
}

/** Completed CI work as /token and /proxy check it: what the webhooks recorded, and the GitHub deployment they come from. */
export interface EndedCiWorkCheck {
  readonly ended: EndedCiWork;
  /**
   * `githubDeploymentOf` the App's API URL: only its jobs' tokens are checked, for the repository and run ids a webhook names
   * are of its own counters. Undefined without an App (its API URL unknown): any GitHub Actions issuer's, against the
   * completions of its own deployment.
   */
  readonly deployment: string | undefined;
}

/**
 * Refuses a verified GitHub Actions token whose job, or run attempt, completed (`ci_work_ended`), as the subject or the
 * actor at /token and at /proxy alike; when the store cannot be read, no token and no call either (`replay_guard_unavailable`). Nothing to
 * check without `check` (no GitHub webhooks), for another kind of issuer's tokens, or for another GitHub deployment's than
 * the App's; and a token is refused only for its own deployment's completions (that of its issuer's URL).
 */
export async function refuseEndedCiWork(
  check: EndedCiWorkCheck | undefined,
  verified: { readonly issuer: TrustedIssuer; readonly claims: Readonly<Record<string, unknown>> },
  now: number,
  token: 'subject' | 'actor' = 'subject',
): Promise<void> {
  if (check === undefined || !isGitHubActionsOf(check.deployment, { url: verified.issuer.url, kind: verified.issuer.preset.name })) return;
  const { ended } = check;
  const job = ciJobOf(verified.claims);
  let hasEnded: boolean;
  try {
    hasEnded = await ended.hasEnded(githubDeploymentOf(verified.issuer.url), job, now);
  } catch (cause) {
    throw new ExchangeError(
      'replay_guard_unavailable',
      `whether the CI job completed could not be checked: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        cause,
      },
    );
  }
  if (hasEnded) {
    const attempt = job.runAttempt === undefined ? '' : ` attempt ${job.runAttempt}`;
    const which = job.checkRunId === undefined ? `run ${job.runId}${attempt}` : `job (check run ${job.checkRunId}) of run ${job.runId}${attempt}`;
    const prefix = token === 'actor' ? 'actor_token: ' : '';
    throw new ExchangeError('ci_work_ended', `${prefix}the ${which} completed (GitHub's webhook said so) before this request`);
  }
}
