import type { AuditEvent, AuditEventDraft } from '../audit/audit-event.ts';
import type { CallerAccount, VerifiedAs } from '../claims/caller-account.ts';
import type { ExchangeError } from '../errors/exchange-error.ts';
import { REASONS } from '../errors/reasons.ts';
import { RateLimitedError } from './rate-limited-error.ts';
import { spendTenantRefusalBudget, type RefusalRecording } from './tenant-refusal-budget.ts';
import { spendUnverifiedBudget } from './unverified-record-budget.ts';

/** The refusal to answer with, and whether its record is appended (RefusalRecording). */
export interface AnsweredRefusal extends RefusalRecording {
  readonly failure: ExchangeError;
}

/**
 * `event` made the record of a refusal for `failure`, the refusal to answer with, and whether to record it. A rate limit's
 * refusal is recorded by its own rule (the first of a run). One of a request whose token did not verify (`event` names no
 * issuer) spends the unverified budget of its chain, and past it is the limit's (spendUnverifiedBudget). One of a
 * verified caller that no allow policy matched (none matched, or none was decided yet and none would match its token)
 * spends its account's budget, which changes what is recorded, never the answer (spendTenantRefusalBudget); so does the
 * first of a rate limit's run for such a caller, since a stranger has a subject, and so a run, per branch. Any other is
 * recorded as it is.
 */
export async function refusalToAnswer(
  deps: Parameters<typeof spendUnverifiedBudget>[0] & Parameters<typeof spendTenantRefusalBudget>[0],
  event: AuditEventDraft,
  failure: ExchangeError,
  verified: VerifiedAs,
): Promise<AnsweredRefusal> {
  event.reason = failure.reason;
  event.decision = REASONS[failure.reason].decision;
  event.detail = failure.message;
  // Asked only of a refusal that may be recorded: the rest of a rate limit's run costs no policy match.
  const strangerOf = (): CallerAccount | undefined => (verified.caller !== undefined && !matchedAnAllowPolicy(event, verified) ? verified.caller : undefined);
  if (failure instanceof RateLimitedError) {
    const stranger = failure.recorded ? strangerOf() : undefined;
    if (stranger === undefined) return { failure, recorded: failure.recorded, limit: failure.limit };
    // The answer stays the limit's 429 (its Retry-After), and the limit that answered is the one counted.
    return { failure, recorded: (await spendTenantRefusalBudget(deps, event, stranger)).recorded, limit: failure.limit };
  }
  if (event.issuer === undefined) {
    const limited = await spendUnverifiedBudget(deps, event);
    return limited === undefined ? { failure, recorded: true } : { failure: limited, recorded: limited.recorded, limit: limited.limit };
  }
  const stranger = strangerOf();
  if (stranger === undefined) return { failure, recorded: true };
  return { failure, ...(await spendTenantRefusalBudget(deps, event, stranger)) };
}

/** Whether an enforcing allow policy's `match` held for `event`'s caller, or would have, when the policies have not decided: no stranger's. */
function matchedAnAllowPolicy(event: Pick<AuditEvent, 'policy'>, verified: VerifiedAs): boolean {
  return event.policy === undefined ? verified.knownToPolicies?.() === true : event.policy.matched.length > 0;
}
