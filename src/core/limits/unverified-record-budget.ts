import type { AuditEvent, AuditEventDraft, AuditLog } from '../audit/audit-event.ts';
import { boundAuditEvent } from '../audit/bound-audit-event.ts';
import { REASONS } from '../errors/reasons.ts';
import type { RateLimitedError } from './rate-limited-error.ts';
import type { LimitSettings } from './limit-settings.ts';
import type { RequestLimits } from './request-limits.ts';

const UNVERIFIED_LIMIT: keyof LimitSettings = 'unverified';

/**
 * Before the record of a request whose token did not verify is appended (a refusal at /token or /proxy, a holder's
 * revocation of a token that is not live): anyone can earn such a record, in the chain of an identity they name, so it
 * spends a budget of that chain (RequestLimits.forUnverifiedRecord). Within it, `event` is recorded as it is; the record
 * that ends a run of the budget's refusals says in its `detail` how many went unrecorded. Past it, the limit's refusal
 * is returned and `event` becomes its record (its `detail` keeps the reason it replaced): append it only when it is the
 * first of its run (`recorded`). The caller decides which requests are unverified: a verified caller's never reach here.
 */
export async function spendUnverifiedBudget(
  deps: { readonly limits: Pick<RequestLimits, 'forUnverifiedRecord'>; readonly audit: Pick<AuditLog, 'shardOf'> },
  event: AuditEventDraft,
): Promise<RateLimitedError | undefined> {
  // The shard of the record as appended: the identity it names, cut as the record keeps it.
  const budget = await deps.limits.forUnverifiedRecord(String(deps.audit.shardOf?.(boundAuditEvent(event)) ?? 0));
  if (budget.refusal !== undefined) {
    recordAsLimited(event, budget.refusal);
    return budget.refusal;
  }
  if (budget.unrecorded !== undefined) {
    event.detail = `after ${budget.unrecorded} refusals answered rate_limited without a record (the unverified limit); ${event.detail ?? ''}`;
  }
  return undefined;
}

const REPLACED = '; refused: ';

/** Makes `event` the record of `limited`, the limit's refusal answered instead of the one it recorded: its `detail` keeps that reason. */
export function recordAsLimited(event: AuditEventDraft, limited: RateLimitedError): void {
  event.detail = limited.message;
  keepReplacedReason(event, event.reason);
  event.reason = limited.reason;
  event.decision = REASONS[limited.reason].decision;
}

/** Ends the `detail` of a limit's record with the reason of the refusal it answered instead (replacedReason reads it). */
export function keepReplacedReason(event: AuditEventDraft, replaced: string): void {
  event.detail = `${event.detail ?? ''}${REPLACED}${replaced}`;
}

/** The reason a limit's record (recordAsLimited) replaced; undefined for any other record. A limit's `detail` is the broker's own text. */
export function replacedReason(event: Pick<AuditEvent, 'reason' | 'detail'>): string | undefined {
  const at = event.reason === 'rate_limited' ? (event.detail?.lastIndexOf(REPLACED) ?? -1) : -1;
  return at === -1 ? undefined : event.detail?.slice(at + REPLACED.length);
}

/**
 * Whether `event` is the record of the first refusal past the unverified budget of its chain (spendUnverifiedBudget): from
 * here until the budget refills, refusals of tokens that did not verify are answered with the limit's 429 and only the
 * first of each run is recorded. The limit's name opens the broker's own `detail` (RateLimitedError), which a subject
 * limit's record (a verified operator's, recordAsLimited too) does not share.
 */
export function spendsPastUnverifiedBudget(event: Pick<AuditEvent, 'reason' | 'detail'>): boolean {
  return replacedReason(event) !== undefined && event.detail?.startsWith(`the ${UNVERIFIED_LIMIT} rate limit `) === true;
}
