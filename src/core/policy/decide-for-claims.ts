import type { Reason } from '../errors/reasons.ts';
import { ExchangeError } from '../errors/exchange-error.ts';
import type { TrustedIssuer } from '../verify/trusted-issuer.ts';
import { checkPresetClaims } from '../verify/verify-subject-token.ts';
import { decide, type AccessRequest, type DecideOptions, type PolicyDecision } from './decide.ts';
import type { PolicySet } from './policy-set.ts';

/**
 * What the broker would do with a token carrying these claims, signature and time aside:
 * `keyway policy explain` and `keyway policy test` take claims as given and ask this.
 * - untrusted: no active policy names the `iss`, so the broker refuses before any policy;
 * - refused: the issuer's preset rejects the claims (missing, mistyped, in the wrong form, naming
 *   another tenant than the issuer URL, or a lifetime over the cap); the policies are
 *   still evaluated, for information, but the broker never reaches them;
 * - decided: the policies decide.
 */
export type ClaimsVerdict =
  | { readonly kind: 'untrusted'; readonly iss: unknown }
  | {
      readonly kind: 'refused';
      readonly issuer: TrustedIssuer;
      readonly reason: Exclude<Reason, 'granted'>;
      readonly detail: string;
      readonly decision: PolicyDecision;
    }
  | { readonly kind: 'decided'; readonly issuer: TrustedIssuer; readonly decision: PolicyDecision };

export function decideForClaims(
  policies: PolicySet,
  claims: Readonly<Record<string, unknown>>,
  request: AccessRequest,
  options: DecideOptions = {},
): ClaimsVerdict {
  const iss = claims['iss'];
  const issuer = typeof iss === 'string' ? policies.issuer(iss) : undefined;
  if (issuer === undefined) return { kind: 'untrusted', iss };
  const decision = decide(policies, { issuer, claims }, request, options);
  try {
    checkPresetClaims(claims, issuer);
  } catch (error) {
    if (!(error instanceof ExchangeError)) throw error;
    return { kind: 'refused', issuer, reason: error.reason, detail: error.message, decision };
  }
  return { kind: 'decided', issuer, decision };
}
