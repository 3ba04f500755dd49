import type { Reason } from '../exchange/reasons.ts';
import type { VerifiedSubjectToken } from '../issuers/verify-subject-token.ts';
import { policyMatches, type Grant, type Policy } from './policy.ts';
import type { PolicySet } from './policy-set.ts';

/** What the caller asked for, beyond the subject token. */
export interface AccessRequest {
  /** Requested audiences; empty means the policy's default (its first). */
  readonly audiences: readonly string[];
  /** Requested scopes; undefined means every scope the policy grants. */
  readonly scopes: readonly string[] | undefined;
}

/** How the decision was reached, for the audit log and `explain`. Never shown to the caller. */
export interface DecisionTrace {
  /** Policies the index offered for this token, in id order. */
  readonly candidates: readonly string[];
  /** Enforcing allow policies whose `match` held. */
  readonly matched: readonly string[];
  /** Enforcing deny policies whose `match` held. */
  readonly deniedBy: readonly string[];
  /** `mode: audit` policies and what they would have decided. */
  readonly audit: readonly { readonly policy: string; readonly would: 'grant' | 'deny' }[];
}

export interface IssuedGrant {
  readonly policy: Policy;
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly subject: string;
  readonly claims: Readonly<Record<string, string>>;
}

export type PolicyDecision =
  | { readonly granted: true; readonly grant: IssuedGrant; readonly trace: DecisionTrace }
  | { readonly granted: false; readonly reason: Extract<Reason, 'no_policy_matched' | 'denied_by_policy' | 'audience_not_granted' | 'scope_not_granted' | 'template_claim_missing'>; readonly detail: string; readonly trace: DecisionTrace };

/**
 * The whole of policy evaluation. Deny beats allow; with no matching allow policy there is no
 * token; among allow policies that match and cover the requested audience and scopes, the
 * first by id grants. `mode: audit` policies are evaluated and traced but change nothing.
 */
export function decide(policies: PolicySet, token: VerifiedSubjectToken, request: AccessRequest): PolicyDecision {
  const claims = token.claims;
  const candidates = policies.index.candidates(token.issuer.url, claims);
  const matching = candidates.filter((policy) => policyMatches(policy, claims));
  const enforced = matching.filter((policy) => policy.mode === 'enforce');
  const deniedBy = enforced.filter((policy) => policy.effect === 'deny');
  const allows = enforced.filter((policy) => policy.effect === 'allow');

  const audit = matching
    .filter((policy) => policy.mode === 'audit')
    .map((policy) => ({
      policy: policy.id,
      would: policy.effect === 'deny' || issue(policy, token, request) === undefined ? ('deny' as const) : ('grant' as const),
    }));
  const trace: DecisionTrace = {
    candidates: candidates.map((policy) => policy.id),
    matched: allows.map((policy) => policy.id),
    deniedBy: deniedBy.map((policy) => policy.id),
    audit,
  };

  if (deniedBy.length > 0) return { granted: false, reason: 'denied_by_policy', detail: `denied by ${deniedBy.map((p) => p.id).join(', ')}`, trace };
  if (allows.length === 0) return { granted: false, reason: 'no_policy_matched', detail: 'no allow policy matched the token', trace };

  const coversAudience = allows.filter((policy) => audiencesFor(policy.grant, request) !== undefined);
  if (coversAudience.length === 0) {
    return { granted: false, reason: 'audience_not_granted', detail: `no matching policy grants audience ${request.audiences.join(' ')}`, trace };
  }
  const coversScope = coversAudience.filter((policy) => scopesFor(policy.grant, request) !== undefined);
  if (coversScope.length === 0) {
    return { granted: false, reason: 'scope_not_granted', detail: `no matching policy grants scope ${request.scopes?.join(' ') ?? ''}`, trace };
  }
  for (const policy of coversScope) {
    const grant = issue(policy, token, request);
    if (grant !== undefined) return { granted: true, grant, trace };
  }
  return { granted: false, reason: 'template_claim_missing', detail: 'every matching policy names a claim the token lacks in its grant templates', trace };
}

function audiencesFor(grant: Grant | undefined, request: AccessRequest): readonly string[] | undefined {
  if (grant === undefined) return undefined;
  if (request.audiences.length === 0) return grant.audiences.slice(0, 1);
  return request.audiences.every((audience) => grant.audiences.includes(audience)) ? request.audiences : undefined;
}

function scopesFor(grant: Grant | undefined, request: AccessRequest): readonly string[] | undefined {
  if (grant === undefined) return undefined;
  if (request.scopes === undefined) return grant.scopes;
  return request.scopes.every((scope) => grant.scopes.includes(scope)) ? request.scopes : undefined;
}

/** The grant this policy would issue for this request, or undefined if it cannot. */
function issue(policy: Policy, token: VerifiedSubjectToken, request: AccessRequest): IssuedGrant | undefined {
  const grant = policy.grant;
  const audiences = audiencesFor(grant, request);
  const scopes = scopesFor(grant, request);
  if (grant === undefined || audiences === undefined || scopes === undefined) return undefined;
  const claims = token.claims;
  let subject = `${token.issuer.url}#${String(claims.sub)}`;
  if (grant.subject !== undefined) {
    const rendered = grant.subject.render(claims);
    if (!rendered.ok) return undefined;
    subject = rendered.value;
  }
  const extra: Record<string, string> = {};
  for (const [name, template] of grant.claims) {
    const rendered = template.render(claims);
    if (!rendered.ok) return undefined;
    extra[name] = rendered.value;
  }
  return { policy, audiences, scopes, ttlSeconds: grant.ttlSeconds, subject, claims: extra };
}
