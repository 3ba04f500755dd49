import type { AuditEvent } from '../../../core/audit/audit-event.ts';
import type { Reason } from '../../../core/errors/reasons.ts';
import { auditedClaims, auditedRequest } from '../../../core/policy/audited-decision-input.ts';
import { decideForClaims } from '../../../core/policy/decide-for-claims.ts';
import type { PolicySet } from '../../../core/policy/policy-set.ts';

/** How far back the review replays audited exchanges. */
export const IMPACT_WINDOW_DAYS = 14;

/** Outcomes the policies decided; every other refusal (expired, replayed, bad signature…) happened before any policy. */
export const POLICY_REASONS: ReadonlySet<Reason> = new Set([
  'granted',
  'no_policy_matched',
  'denied_by_policy',
  'audience_not_granted',
  'scope_not_granted',
  'template_claim_missing',
  'template_value_forbidden',
]);

/** One exchange whose outcome the proposed set changes. */
export interface ImpactExample {
  readonly event_id: string;
  readonly time: string;
  readonly issuer: string;
  readonly subject?: string;
  /** What happened: the reason recorded. */
  readonly was: Reason;
  /** What the proposed set decides: `granted` (by which policy) or the refusal reason. */
  readonly now: Reason;
  readonly policy?: string;
}

export interface ReplayImpact {
  /** Exchanges the policies decided, re-decided under the proposed set. */
  readonly replayed: number;
  /** Refused before any policy (or never verified): the proposed set would not change them. */
  readonly skipped: number;
  readonly newlyAllowed: number;
  readonly newlyDenied: number;
  /** The first few of each, oldest first. */
  readonly examples: { readonly allowed: readonly ImpactExample[]; readonly denied: readonly ImpactExample[] };
}

export const MAX_IMPACT_EXAMPLES = 10;

/** A replay's counts, and the first examples of each side, as the events go by. */
class ImpactTally {
  replayed = 0;
  skipped = 0;
  readonly #allowed: ImpactExample[] = [];
  readonly #denied: ImpactExample[] = [];
  #newlyAllowed = 0;
  #newlyDenied = 0;

  /** An exchange whose outcome changes: `now` says which way. */
  changed(event: AuditEvent, now: Reason, policy?: string): void {
    const example: ImpactExample = {
      event_id: event.id,
      time: event.time,
      issuer: event.issuer as string,
      ...(event.subject === undefined ? {} : { subject: event.subject }),
      was: event.reason,
      now,
      ...(policy === undefined ? {} : { policy }),
    };
    const examples = now === 'granted' ? this.#allowed : this.#denied;
    if (now === 'granted') this.#newlyAllowed++;
    else this.#newlyDenied++;
    if (examples.length < MAX_IMPACT_EXAMPLES) examples.push(example);
  }

  result(): ReplayImpact {
    const { replayed, skipped } = this;
    return { replayed, skipped, newlyAllowed: this.#newlyAllowed, newlyDenied: this.#newlyDenied, examples: { allowed: this.#allowed, denied: this.#denied } };
  }
}

/**
 * Re-decides audited exchanges under a proposed policy set and compares with what happened:
 * "would newly allow 2, newly deny 5". Pure: the caller reads the events. A recorded event keeps
 * only the claims some policy read then (and the preset's audit claims), so a new policy that
 * reads a claim no policy read before sees it missing, and does not match: the replay errs
 * towards "no new access", never towards a false "no change" for existing lines.
 */
export function replayImpact(proposed: PolicySet, events: Iterable<AuditEvent>, brokerIssuer: string): ReplayImpact {
  const tally = new ImpactTally();
  for (const event of events) {
    const claims = auditedClaims(event, brokerIssuer);
    if (claims === undefined || !POLICY_REASONS.has(event.reason)) {
      tally.skipped++;
      continue;
    }
    tally.replayed++;
    const verdict = decideForClaims(proposed, claims, auditedRequest(event.request));
    const now: Reason =
      verdict.kind === 'untrusted'
        ? 'issuer_untrusted'
        : verdict.kind === 'refused'
          ? verdict.reason
          : verdict.decision.granted
            ? 'granted'
            : verdict.decision.reason;
    if ((event.reason === 'granted') === (now === 'granted')) continue;
    tally.changed(event, now, verdict.kind === 'decided' && verdict.decision.granted ? verdict.decision.grant.policy.id : undefined);
  }
  return tally.result();
}

/** Which recorded policy ids are an organisation's: its repositories' own policies, and its guardrails. */
export interface OrganisationIds {
  readonly isPolicy: (id: string) => boolean;
  readonly isGuardrail: (id: string) => boolean;
}

/**
 * Re-decides, under an organisation's proposed guardrails, the audited exchanges its repositories' own
 * policies decided: a granted one a proposed guardrail denies is newly denied; one its guardrails alone
 * denied that none denies now is newly allowed, provided the repository's policy still grants (the record
 * does not hold that policy). Every other exchange is none of the organisation's and is left out.
 */
export function replayGuardrailImpact(proposed: PolicySet, events: Iterable<AuditEvent>, brokerIssuer: string, organisation: OrganisationIds): ReplayImpact {
  const tally = new ImpactTally();
  for (const event of events) {
    const wasGranted = event.reason === 'granted' && event.policy?.granted_by !== undefined && organisation.isPolicy(event.policy.granted_by);
    const deniedBy = event.reason === 'denied_by_policy' ? (event.policy?.denied_by ?? []) : [];
    const wasGuarded = deniedBy.length > 0 && deniedBy.every(organisation.isGuardrail);
    if (!wasGranted && !wasGuarded) continue;
    const claims = auditedClaims(event, brokerIssuer);
    if (claims === undefined) {
      tally.skipped++;
      continue;
    }
    tally.replayed++;
    const verdict = decideForClaims(proposed, claims, auditedRequest(event.request));
    const denies = verdict.kind !== 'untrusted' && verdict.decision.trace.deniedBy.length > 0;
    if (wasGranted !== denies) continue;
    tally.changed(event, denies ? 'denied_by_policy' : 'granted');
  }
  return tally.result();
}
