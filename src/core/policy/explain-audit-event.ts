import type { AuditEvent } from '../audit/audit-event.ts';
import { AUDIT_BOUNDS } from '../audit/bound-audit-event.ts';
import { auditedClaims, auditedRequest, type RecordedCuts, recordedCuts } from './audited-decision-input.ts';
import { isDenialReason } from './decide.ts';
import { explainClaims, type Explanation } from './explain.ts';
import type { PolicySet } from './policy-set.ts';

/** Which policy set an explanation of a recorded decision used, beside the one that decided. */
export interface ExplainedPolicySet {
  /** The version recorded with the decision; null when the record names none. */
  readonly decided: string | null;
  /** The version of the set this explanation ran against; null for a set made in memory. */
  readonly explained: string | null;
  /** True only when both are known and equal: the explanation replays the very set that decided. */
  readonly same: boolean;
}

interface RecordedDecision {
  readonly id: string;
  readonly time: string;
  readonly decision: AuditEvent['decision'];
  readonly reason: AuditEvent['reason'];
  readonly detail?: string;
}

/** Why a recorded decision went as it did: plain JSON for `keyway audit explain`, the /audit page and `POST /v1/policy/explain`. */
export type AuditEventExplanation =
  | { readonly explained: 'audit_event'; readonly audit_event: RecordedDecision; readonly evaluated: false; readonly note: string }
  | ({
      readonly explained: 'audit_event';
      readonly audit_event: RecordedDecision;
      readonly evaluated: true;
      readonly note: string;
      readonly policy_set: ExplainedPolicySet;
      /** What the record kept cut of the claims and request replayed: where the replay may not be the decision as made. */
      readonly cut: RecordedCuts;
    } & Explanation);

/** A repository's own policy was asked for with `scope=policy:NAME`; the record keeps no copy of that file. */
const asksRepositoryPolicy = (event: AuditEvent): boolean => (event.request.scope ?? []).some((scope) => scope.startsWith('policy:'));

/** What a record shows it asked for beyond a plain access token; undefined when it does not say (a refusal before any grant). */
function recordedRequestKind(event: AuditEvent): string | undefined {
  if (event.proxy !== undefined || event.reason.startsWith('proxy_')) return 'it asked for proxy access';
  if (event.github !== undefined || event.github_tokens !== undefined || event.reason.startsWith('github_')) return 'it asked for a GitHub token';
  if (event.cloud !== undefined || event.reason.startsWith('cloud_')) return 'it asked for a cloud token';
  if (event.actor !== undefined) return 'it was a delegated request (with an actor token)';
  return undefined;
}

/** What the note says of a subject token kept by its length, not its hash (presented-token.ts): there is no hash to look for. */
const keptByLength = (event: AuditEvent): string =>
  event.subject_token?.length === undefined
    ? ''
    : ` (it was not shaped as a JWT: ${event.subject_token.length} characters, kept by its length, without a hash)`;

// The record keeps the audience and scope asked for, not the token type, the repositories or the actor's claims.
const REPLAYED_AS_ACCESS_TOKEN = 'the record keeps only the audience and scope asked for, so the replay asks for an access token, with no actor';

/** What the note says of values the record kept cut, which the replay reads as kept; undefined when it kept none cut. */
function cutNote({ claims, request }: RecordedCuts): string | undefined {
  const named = [
    ...(claims.length === 0 ? [] : [`claim${claims.length === 1 ? '' : 's'} ${claims.join(', ')}`]),
    ...request.map((list) => `the requested ${list}`),
  ];
  if (named.length === 0) return undefined;
  return (
    `the record keeps ${named.join(' and ')} cut (a text past ${AUDIT_BOUNDS.text} characters ends in …, a list past ${AUDIT_BOUNDS.entries} entries ` +
    `or ${AUDIT_BOUNDS.value} characters in a …N more entry), and the replay reads what it kept, not what the decision read: ` +
    'a policy line that reads it may hold or fail otherwise than it did, so the outcome may differ for that alone'
  );
}

function policySetNote(event: AuditEvent, set: ExplainedPolicySet, grantedNow: boolean, cut: string | undefined): string {
  const withCut = (note: string): string => (cut === undefined ? note : `${note}; but ${cut}`);
  if (set.same) {
    const note = `explained by the policy set that decided (${set.decided}), with the claims recorded at decision time`;
    // A record refused after the policies granted (a DPoP proof missing, a single-use token again, GitHub unavailable) was granted by them.
    // A token for an audience no policy accepts is refused where they decide (at /proxy with their trace): by them.
    const refusedByPolicies = isDenialReason(event.reason) || event.reason === 'audience_mismatch';
    const policiesGranted = event.decision === 'granted' || event.policy?.granted_by !== undefined || !refusedByPolicies;
    if (grantedNow === policiesGranted) {
      return withCut(
        policiesGranted && event.decision !== 'granted' ? `${note}; the policies granted it, and it was refused after them (${event.reason})` : note,
      );
    }
    const outcome = `${note}; yet these policies ${grantedNow ? 'grant' : 'refuse'} it now, where they ${policiesGranted ? 'granted' : 'refused'} it then`;
    const kind = recordedRequestKind(event);
    if (kind !== undefined) return withCut(`${outcome}: ${kind}, and ${REPLAYED_AS_ACCESS_TOKEN}, so the two outcomes do not compare`);
    // A cut value the policies read is reason enough: the other explanations are guesses beside it.
    if (cut !== undefined) return `${outcome}: ${cut}`;
    return (
      `${outcome}: either it asked for a GitHub token, a cloud token or proxy access (${REPLAYED_AS_ACCESS_TOKEN}), ` +
      'or the keyway that decided evaluated the same policies otherwise (before 2026-12-04, a deny policy that names no subject_audience held only for tokens minted for the broker)'
    );
  }
  if (set.decided === null) {
    return withCut(
      asksRepositoryPolicy(event)
        ? "decided by a repository's own policy (scope policy:NAME), of which the record keeps no copy: explained by the central policies given here, which may decide otherwise"
        : 'the record names no policy-set version (it predates them): explained by the policies given here, which may decide otherwise',
    );
  }
  return withCut(
    `the policy set that decided (${set.decided}) is not the one given here (${set.explained ?? 'a set made in memory'}): this shows what these policies ` +
      'decide for the recorded claims, which may differ from what was decided then; to replay that moment, run keyway audit explain --policies DIR ' +
      'on a copy of the policy directory as it was (its version is checked)',
  );
}

/** An audience or scope list to explain instead of the one the record asked for (`POST /v1/policy/explain`). */
export type AskedInstead = Partial<Pick<AuditEvent['request'], 'audience' | 'scope'>>;

/**
 * Runs the policy explanation against an audit record's claims and request (or `instead`'s lists). The record names
 * the version of the policy set that decided; the answer says whether `policies` is that set, and what it means when
 * it is not, and what of the claims and lists replayed the record kept cut.
 */
export function explainAuditEvent(event: AuditEvent, policies: PolicySet, brokerIssuer: string, instead: AskedInstead = {}): AuditEventExplanation {
  const audit_event = {
    id: event.id,
    time: event.time,
    decision: event.decision,
    reason: event.reason,
    ...(event.detail === undefined ? {} : { detail: event.detail }),
  };
  const claims = auditedClaims(event, brokerIssuer);
  if (claims === undefined) {
    return {
      explained: 'audit_event',
      audit_event,
      evaluated: false,
      note: `the subject token never verified${keptByLength(event)}, so no policy was evaluated; the reason above is the whole story`,
    };
  }
  const decided = event.policy?.set_version ?? null;
  const explained = policies.version ?? null;
  const policy_set = { decided, explained, same: decided !== null && decided === explained };
  const explanation = explainClaims(policies, claims, auditedRequest({ ...event.request, ...instead }));
  const recorded = recordedCuts(event);
  const cut = { claims: recorded.claims, request: recorded.request.filter((list) => instead[list] === undefined) };
  return {
    explained: 'audit_event',
    audit_event,
    evaluated: true,
    note: policySetNote(event, policy_set, explanation.decision.granted, cutNote(cut)),
    policy_set,
    cut,
    ...explanation,
  };
}
