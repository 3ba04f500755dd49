import type { AuditEventDraft } from '../audit/audit-event.ts';
import type { CallerAccount } from '../claims/caller-account.ts';
import type { RequestLimits } from './request-limits.ts';

const LIMIT_NAME = 'tenant_refusals';

/** Whether a refusal's record is appended, and the limit whose budget it was past, when it was (counted in metrics). */
export interface RefusalRecording {
  readonly recorded: boolean;
  readonly limit?: string;
}

/**
 * Before the record of a refusal of a verified caller that no allow policy matched is appended. A shared issuer (GitHub
 * Actions, gitlab.com, CircleCI…) vouches for anyone who can run a job there, and each can mint tokens of as many
 * subjects as it likes, so these records spend a budget of the caller's account (RequestLimits.forTenantRefusalRecord):
 * a stranger spends its own, never another account's. The answer never changes, only what is written: within the budget
 * `event` is recorded as it is (the record that ends a run of unrecorded refusals says how many); past it, only the first
 * refusal of a run is recorded, saying so.
 */
export async function spendTenantRefusalBudget(
  deps: { readonly limits: Pick<RequestLimits, 'forTenantRefusalRecord'> },
  event: AuditEventDraft,
  caller: CallerAccount,
): Promise<RefusalRecording> {
  const budget = await deps.limits.forTenantRefusalRecord(caller);
  if (budget.refusal !== undefined) {
    if (budget.refusal.recorded) {
      event.detail = `the first refusal past the ${LIMIT_NAME} limit: the rest of its run is answered without a record; ${event.detail ?? ''}`;
    }
    return { recorded: budget.refusal.recorded, limit: budget.refusal.limit };
  }
  if (budget.unrecorded !== undefined) {
    event.detail = `after ${budget.unrecorded} refusals answered without a record (the ${LIMIT_NAME} limit); ${event.detail ?? ''}`;
  }
  return { recorded: true };
}
