import type { AuditLog } from '../../../core/audit/audit-event.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../../../core/mint/verify-access-token.ts';
import { recordExamination } from '../../../core/revocation/examine-token.ts';
import type { RevocationList } from '../../../core/revocation/revocation-list.ts';

export interface RunTokenDeps {
  readonly issuer: string;
  readonly audit: AuditLog;
  readonly revocations: RevocationList;
  readonly now: () => number;
  /** No keyway token lives longer (KEYWAY_MAX_TTL_SECONDS): how far back the grants of a run are looked for. */
  readonly maxTtlSeconds: number;
}

/** A GitHub Actions job that completed, as the `workflow_job` webhook names it. */
export interface CompletedJob {
  readonly repository: string;
  readonly repositoryId: string;
  readonly runId: string;
  /** The workflow job's id, for the records. */
  readonly jobId: string;
  /**
   * Its check run's id (the last segment of the payload's `check_run_url`): what the `check_run_id` claim of the
   * tokens it obtained holds. Undefined when the payload has no usable one.
   */
  readonly checkRunId: string | undefined;
  /** The webhook delivery, for the records. */
  readonly deliveryId: string;
}

/**
 * Whether a token granted for these verified claims ends with this job: same `repository_id` and `run_id`, and the
 * job's own `check_run_id`. A token without `check_run_id` (GitHub Enterprise Server releases whose tokens lack it)
 * cannot be told apart from the run's other jobs: the end of any job of its run ends it, as before the claim existed.
 * A job whose check run is unknown ends only those.
 */
function endsWithJob(claims: Readonly<Record<string, unknown>>, job: CompletedJob): boolean {
  if (String(claims['repository_id']) !== job.repositoryId || String(claims['run_id']) !== job.runId) return false;
  const checkRunId = claims['check_run_id'];
  if (checkRunId === undefined || checkRunId === null) return true;
  return job.checkRunId !== undefined && String(checkRunId) === job.checkRunId;
}

/** What the records say ended: `the workflow job 96193868770 of run 32291736541 completed`. */
export function jobEnded(job: CompletedJob): string {
  return `the workflow job ${job.jobId} of run ${job.runId} completed`;
}

/** How many audit pages of a repository's grants are read for one run, at most. */
const MAX_PAGES = 20;
const PAGE = 500;

/**
 * Revokes every live keyway access token granted to a completed job, found in the audit log: the
 * grants of the repository within the broker's longest TTL whose recorded claims end with it
 * (`endsWithJob`: this `repository_id`, `run_id` and `check_run_id`, or no `check_run_id` at all).
 * The tokens of the run's other jobs stay live. Each revocation has its record; a token already
 * revoked (by an earlier job of the run, or `POST /revoke`) is left alone, without another.
 * Returns how many were revoked now.
 */
export async function revokeRunTokens(deps: RunTokenDeps, job: CompletedJob): Promise<number> {
  const now = deps.now();
  const live: { readonly jti: string; readonly exp: number }[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const found = await deps.audit.query({
      decisions: ['granted'],
      reasons: ['granted'],
      repository: job.repository,
      // A token granted maxTtl ago still verifies for the skew after its exp.
      since: now - (deps.maxTtlSeconds + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000,
      limit: PAGE,
      order: 'asc',
      ...(after === undefined ? {} : { after }),
    });
    for (const { event } of found.records) {
      // Still verifiable (exp and the skew tolerated beyond it): worth revoking.
      const { issued } = event;
      if (endsWithJob(event.claims ?? {}, job) && issued !== undefined && (issued.exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000 > now)
        live.push({ jti: issued.jti, exp: issued.exp });
    }
    if (found.next === undefined) break;
    after = found.next;
  }
  let revoked = 0;
  for (const token of live) {
    if (await deps.revocations.isRevoked(token.jti, now)) continue;
    const detail = `revoked keyway token ${token.jti}: ${jobEnded(job)}`;
    const id = await recordExamination(deps, {
      caller: { webhook: 'workflow_job' },
      reason: 'token_revoked',
      detail,
      context: { requestId: job.deliveryId, clientIp: undefined, userAgent: undefined },
      now,
    });
    await deps.revocations.revoke(token, id, now);
    revoked += 1;
  }
  return revoked;
}
