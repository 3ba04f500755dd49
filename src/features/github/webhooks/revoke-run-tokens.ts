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

/** A GitHub Actions run whose job completed, as the `workflow_job` webhook names it. */
export interface EndedRun {
  readonly repository: string;
  readonly repositoryId: string;
  readonly runId: string;
  /** The webhook delivery, for the records. */
  readonly deliveryId: string;
}

/** How many audit pages of a repository's grants are read for one run, at most. */
const MAX_PAGES = 20;
const PAGE = 500;

/**
 * Revokes every live keyway access token granted to a run's jobs, found in the audit log: the
 * grants of the repository within the broker's longest TTL whose verified claims name this
 * `repository_id` and `run_id`. Each revocation has its record; a token already revoked (by an
 * earlier job of the run, or `POST /revoke`) is left alone, without another. Returns how many were
 * revoked now.
 */
export async function revokeRunTokens(deps: RunTokenDeps, run: EndedRun): Promise<number> {
  const now = deps.now();
  const live: { readonly jti: string; readonly exp: number }[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const found = await deps.audit.query({
      decisions: ['granted'],
      reasons: ['granted'],
      repository: run.repository,
      // A token granted maxTtl ago still verifies for the skew after its exp.
      since: now - (deps.maxTtlSeconds + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000,
      limit: PAGE,
      order: 'asc',
      ...(after === undefined ? {} : { after }),
    });
    for (const { event } of found.records) {
      const claims = event.claims ?? {};
      const ofRun = String(claims['repository_id']) === run.repositoryId && String(claims['run_id']) === run.runId;
      // Still verifiable (exp and the skew tolerated beyond it): worth revoking.
      const { issued } = event;
      if (ofRun && issued !== undefined && (issued.exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000 > now) live.push({ jti: issued.jti, exp: issued.exp });
    }
    if (found.next === undefined) break;
    after = found.next;
  }
  let revoked = 0;
  for (const token of live) {
    if (await deps.revocations.isRevoked(token.jti, now)) continue;
    const detail = `revoked keyway token ${token.jti}: the workflow job of run ${run.runId} completed`;
    const id = await recordExamination(deps, {
      caller: { webhook: 'workflow_job' },
      reason: 'token_revoked',
      detail,
      context: { requestId: run.deliveryId, clientIp: undefined, userAgent: undefined },
      now,
    });
    await deps.revocations.revoke(token, id, now);
    revoked += 1;
  }
  return revoked;
}
