import type { RefusalDiagnostics } from '../errors/exchange-error.ts';
import { closestAllowPolicy } from './closest-policy.ts';
import { decide, type AccessRequest, type PolicyEvaluation, type SubjectClaims } from './decide.ts';
import { tenantPins } from './lint/lint-policies.ts';
import type { PolicySet } from './policy-set.ts';

/**
 * What a refused caller may learn, by the `diagnostics` of the closest allow policy of its issuer (as `keyway policy
 * explain` measures it): with `claim-names`, the names of the claims that failed for that policy and the ids of the
 * deny guardrails that fired; otherwise nothing. On a shared issuer only the policies whose tenant pins held for the
 * token can be closest: were another organisation's policy closer, the silence would tell which values it wants.
 */
export function refusalDiagnostics(policies: PolicySet, token: SubjectClaims, request: AccessRequest): RefusalDiagnostics | undefined {
  // Every policy of the issuer is evaluated again: only where some policy asks for it, so a silent issuer's refusals cost nothing more.
  if (!policies.diagnoses(token.issuer.url)) return undefined;
  const decision = decide(policies, token, request, { everyPolicyOfIssuer: true });
  if (decision.granted) return undefined;
  const closest = closestAllowPolicy(token.issuer.shared ? decision.evaluations.filter(isOwnTenants) : decision.evaluations);
  if (closest === undefined || closest.evaluation.policy.diagnostics !== 'claim-names') return undefined;
  return { failed_claims: closest.failedClaims, denied_by: decision.trace.deniedBy };
}

/** A policy of the token's own tenant: it pins one, and every pin held. */
function isOwnTenants({ policy, lines }: PolicyEvaluation): boolean {
  const pins = tenantPins(policy.issuer.preset, lines);
  return pins.length > 0 && pins.every((line) => line.held);
}
