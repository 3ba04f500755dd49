import type { PolicyEvaluation } from './decide.ts';

/** The allow policy a token came closest to, and the names of the claims whose lines failed for it. */
export interface ClosestPolicy {
  readonly evaluation: PolicyEvaluation;
  /** Claim names, in the policy's line order; `aud` for its subject audience line. Never values or patterns. */
  readonly failedClaims: readonly string[];
}

/**
 * Of the enforcing allow policies evaluated, the one with the fewest lines that failed; a tie goes to the first by
 * id. `keyway policy explain` shows it, and a refusal's diagnostics name its failed claims when it allows that.
 */
export function closestAllowPolicy(evaluations: readonly PolicyEvaluation[]): ClosestPolicy | undefined {
  let closest: ClosestPolicy | undefined;
  for (const evaluation of evaluations) {
    if (evaluation.policy.effect !== 'allow' || evaluation.policy.mode !== 'enforce') continue;
    const failedClaims = [...new Set(evaluation.lines.filter((line) => !line.held).map((line) => (line.key === 'subject_audience' ? 'aud' : line.key)))];
    if (closest === undefined || failedClaims.length < closest.failedClaims.length) closest = { evaluation, failedClaims };
  }
  return closest;
}
