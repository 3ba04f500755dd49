import { callerAccount, OWN_TOKEN_TENANT_CLAIMS } from '../claims/caller-account.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import type { RateLimitedError } from '../limits/rate-limited-error.ts';
import type { RequestLimits } from '../limits/request-limits.ts';
import { recordAsLimited, spendUnverifiedBudget } from '../limits/unverified-record-budget.ts';
import type { AppendedRecord } from '../audit/audit-event.ts';
import { appendExaminationRecord, examinationRecord, type RevocationDeps } from './examine-token.ts';

/** Where a refused operator credential is recorded, and the budgets of its records: strangers', and each subject's. */
export interface OperatorRefusalDeps extends Pick<RevocationDeps, 'issuer' | 'audit' | 'now'> {
  readonly limits: Pick<RequestLimits, 'forUnverifiedRecord' | 'forSubject'>;
}

/** An operator credential refused: at an operator API (`/v1/*`, `/introspect`, an operator's `/revoke`) or the `/audit` page. */
export interface OperatorRefusal {
  /** The credential as presented, when one came: the record keeps its SHA-256 and its claimed `jti`, `iss` and `sub`, never the token. */
  readonly token?: string;
  /** Of a token the broker's own keys signed (refused for its scope, or revoked): the record names that operator. */
  readonly operator?: OperatorClaims;
  readonly reason: 'operator_token_invalid' | 'operator_scope_missing';
  /** Where and why, for the operator who reads the record. */
  readonly detail: string;
  readonly context: RequestContext;
}

/** What a refused token the broker's own keys signed says of its operator: its `sub`, and the policy that granted it. */
export type OperatorClaims = { readonly sub: string; readonly client_id?: unknown };

/** What became of a refusal's record: its id, once durable; past the unverified budget, the limit's refusal to answer with. */
export interface RecordedRefusal {
  readonly auditEventId?: string;
  /** The record, once durable: for the alert rules. */
  readonly record?: AppendedRecord;
  readonly limited?: RateLimitedError;
}

/**
 * Records a refused operator credential. A refusal that names no operator (a forged, expired or foreign token, or none
 * at all) is anyone's to send, so its record spends the unverified budget of its chain as /token's refusals of tokens that
 * did not verify do: past it, only the first refusal of a run is written and the answer is the limit's (429); the record
 * that ends the run counts those that went unwritten. A token the broker's own keys signed names its operator, and spends
 * that subject's budget as a verified caller's exchanges at /token do: any CI job that can exchange holds such a token
 * (of any audience, which it may revoke itself), so past it only the first refusal of a run is written, as /token's.
 */
export async function recordOperatorRefusal(deps: OperatorRefusalDeps, refusal: OperatorRefusal): Promise<RecordedRefusal> {
  const { token, operator, reason, detail, context } = refusal;
  const event = examinationRecord(deps, {
    ...(token === undefined ? {} : { token }),
    caller: operator === undefined ? { holder: true } : { operator: operator.sub },
    reason,
    detail,
    context,
    now: deps.now(),
  });
  const limited =
    operator === undefined
      ? await spendUnverifiedBudget(deps, event)
      : await deps.limits.forSubject(callerAccount(deps.issuer, OWN_TOKEN_TENANT_CLAIMS, operator), operator.sub);
  if (limited !== undefined && operator !== undefined) recordAsLimited(event, limited);
  if (limited !== undefined && !limited.recorded) return { limited };
  const record = await appendExaminationRecord(deps, event);
  const recorded = { auditEventId: record.event.id, record };
  return limited === undefined ? recorded : { ...recorded, limited };
}
