import type { Reason } from '../errors/reasons.ts';
import type { AccessRequest, GrantOutcome, PolicyEvaluation } from './decide.ts';
import { closestAllowPolicy } from './closest-policy.ts';
import { decideForClaims } from './decide-for-claims.ts';
import type { PolicySet } from './policy-set.ts';
import type { Matcher } from './schema.ts';

/** One line of a policy in an explanation. `actual` is absent when the token lacks the claim. */
export interface ExplainedLine {
  readonly claim: string;
  readonly matcher: Matcher;
  readonly actual?: unknown;
  readonly held: boolean;
}

export interface ExplainedPolicy {
  readonly id: string;
  readonly file: string;
  readonly description?: string;
  readonly effect: 'allow' | 'deny';
  readonly mode: 'enforce' | 'audit';
  readonly matched: boolean;
  readonly lines: readonly ExplainedLine[];
  /** For allow policies whose lines all held: what the grant gave this request, or why not. */
  readonly grant?: { readonly ok: true } | { readonly ok: false; readonly reason: Reason; readonly detail: string };
}

export type ExplainedDecision =
  | {
      readonly granted: true;
      readonly policy: string;
      readonly audience: readonly string[];
      readonly scope: readonly string[];
      readonly ttl_seconds: number;
      readonly subject: string;
      readonly claims: Readonly<Record<string, string>>;
    }
  | { readonly granted: false; readonly reason: Reason; readonly detail: string };

/** Why the broker decides as it does for these claims: plain JSON, for people (`keyway policy explain`) and operators (`POST /v1/policy/explain`). */
export interface Explanation {
  readonly issuer: string | null;
  readonly preset?: string;
  readonly request: { readonly audience: readonly string[]; readonly scope: readonly string[] | null };
  /** Every active policy of the issuer, in id order. */
  readonly policies: readonly ExplainedPolicy[];
  /** Policies of the issuer that take no part in decisions, and why. */
  readonly inactive: readonly { readonly id: string; readonly why: string }[];
  /** Enforcing deny policies whose lines all held. */
  readonly denied_by: readonly string[];
  /** The enforcing allow policy with the fewest failed lines (what a refusal's diagnostics are about), and its failed claim names. */
  readonly closest: { readonly policy: string; readonly failed_claims: readonly string[] } | null;
  readonly decision: ExplainedDecision;
}

/** Explains what the broker decides for a token carrying these claims, by the same `decide` the exchange runs. */
export function explainClaims(policies: PolicySet, claims: Readonly<Record<string, unknown>>, request: AccessRequest): Explanation {
  const verdict = decideForClaims(policies, claims, request, { everyPolicyOfIssuer: true });
  const requested = { audience: request.audiences, scope: request.scopes ?? null };
  if (verdict.kind === 'untrusted') {
    return {
      issuer: typeof verdict.iss === 'string' ? verdict.iss : null,
      request: requested,
      policies: [],
      inactive: [],
      denied_by: [],
      closest: null,
      decision: { granted: false, reason: 'issuer_untrusted', detail: `no active policy trusts iss ${JSON.stringify(verdict.iss)}` },
    };
  }
  const { decision, issuer } = verdict;
  let outcome: ExplainedDecision;
  if (verdict.kind === 'refused') {
    outcome = {
      granted: false,
      reason: verdict.reason,
      detail: `${verdict.detail}; the broker refuses the token before any policy (the policies below are shown for information)`,
    };
  } else if (decision.granted) {
    const { grant } = decision;
    outcome = {
      granted: true,
      policy: grant.policy.id,
      audience: grant.audiences,
      scope: grant.scopes,
      ttl_seconds: grant.ttlSeconds,
      subject: grant.subject,
      claims: grant.claims,
    };
  } else {
    outcome = { granted: false, reason: decision.reason, detail: decision.detail };
  }
  return {
    issuer: issuer.url,
    preset: issuer.preset.name,
    request: requested,
    policies: decision.evaluations.map(explainPolicy),
    inactive: policies.inactive.filter((entry) => entry.policy?.issuer.url === issuer.url).map((entry) => ({ id: entry.id, why: entry.why })),
    denied_by: decision.trace.deniedBy,
    closest: closestOf(decision.evaluations),
    decision: outcome,
  };
}

function closestOf(evaluations: readonly PolicyEvaluation[]): Explanation['closest'] {
  const closest = closestAllowPolicy(evaluations);
  return closest === undefined ? null : { policy: closest.evaluation.policy.id, failed_claims: closest.failedClaims };
}

function explainPolicy(evaluation: PolicyEvaluation): ExplainedPolicy {
  const { policy } = evaluation;
  return {
    id: policy.id,
    file: policy.file,
    ...(policy.description === undefined ? {} : { description: policy.description }),
    effect: policy.effect,
    mode: policy.mode,
    matched: evaluation.matched,
    lines: evaluation.lines.map((line) => ({
      claim: line.key,
      matcher: line.written,
      ...(line.actual === undefined ? {} : { actual: line.actual }),
      held: line.held,
    })),
    ...(evaluation.grant === undefined ? {} : { grant: explainGrant(evaluation.grant) }),
  };
}

function explainGrant(outcome: GrantOutcome): ExplainedPolicy['grant'] {
  return outcome.ok ? { ok: true } : { ok: false, reason: outcome.reason, detail: outcome.detail };
}
