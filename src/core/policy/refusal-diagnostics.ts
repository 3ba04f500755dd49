import type { RefusalDiagnostics } from '../errors/exchange-error.ts';
import { closestAllowPolicy } from './closest-policy.ts';
import { decide, type AccessRequest, type SubjectClaims } from './decide.ts';
import { tenantPins } from './lint/lint-policies.ts';
import type { PolicySet } from './policy-set.ts';

/**
 * What a refused caller may learn, by the `diagnostics` of the closest allow policy of its issuer (as `keyway policy
 * explain` measures it): with `claim-names`, the names of the claims that failed for that policy and the ids of the
 * deny guardrails that fired; otherwise nothing. On a shared issuer the policy's tenant pin must have held, so a
 * stranger from another organisation learns nothing about this one's policies.
 */
export function refusalDiagnostics(policies: PolicySet, token: SubjectClaims, request: AccessRequest): RefusalDiagnostics | undefined {
  // Every policy of the issuer is evaluated again: only where some policy asks for it, so a silent issuer's refusals cost nothing more.
  if (!policies.diagnoses(token.issuer.url)) return undefined;
  const decision = decide(policies, token, request, { everyPolicyOfIssuer: true });
  if (decision.granted) return undefined;
  const closest = closestAllowPolicy(decision.evaluations);
  if (closest === undefined || closest.evaluation.policy.diagnostics !== 'claim-names') return undefined;
  const { policy, lines } = closest.evaluation;
  if (policy.issuer.shared) {
    const pins = tenantPins(policy.issuer.preset.tenantClaims, lines);
    if (pins.length === 0 || !pins.every((line) => line.held)) return undefined;
  }
  return { failed_claims: closest.failedClaims, denied_by: decision.trace.deniedBy };
}
