import type { AuditEvent } from '../audit/audit-event.ts';
import { auditedClaims, auditedRequest } from './audited-decision-input.ts';
import { type AccessRequest, isDenialReason } from './decide.ts';
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

function policySetNote(event: AuditEvent, set: ExplainedPolicySet, grantedNow: boolean): string {
  if (set.same) {
    const note = `explained by the policy set that decided (${set.decided}), with the claims recorded at decision time`;
    // A record refused after the policies granted (a DPoP proof missing, a single-use token again, GitHub unavailable) was granted by them.
    const policiesGranted = event.decision === 'granted' || event.policy?.granted_by !== undefined || !isDenialReason(event.reason);
    if (grantedNow === policiesGranted) {
      return policiesGranted && event.decision !== 'granted' ? `${note}; the policies granted it, and it was refused after them (${event.reason})` : note;
    }
    const outcome = `${note}; yet these policies ${grantedNow ? 'grant' : 'refuse'} it now, where they ${policiesGranted ? 'granted' : 'refused'} it then`;
    const kind = recordedRequestKind(event);
    if (kind !== undefined) return `${outcome}: ${kind}, and ${REPLAYED_AS_ACCESS_TOKEN}, so the two outcomes do not compare`;
    return (
      `${outcome}: either it asked for a GitHub token, a cloud token or proxy access (${REPLAYED_AS_ACCESS_TOKEN}), ` +
      'or the keyway that decided evaluated the same policies otherwise (before 2026-12-04, a deny policy that names no subject_audience held only for tokens minted for the broker)'
    );
  }
  if (set.decided === null) {
    return asksRepositoryPolicy(event)
      ? "decided by a repository's own policy (scope policy:NAME), of which the record keeps no copy: explained by the central policies given here, which may decide otherwise"
      : 'the record names no policy-set version (it predates them): explained by the policies given here, which may decide otherwise';
  }
  return (
    `the policy set that decided (${set.decided}) is not the one given here (${set.explained ?? 'a set made in memory'}): this shows what these policies ` +
    'decide for the recorded claims, which may differ from what was decided then; to replay that moment, run keyway audit explain --policies DIR ' +
    'on a copy of the policy directory as it was (its version is checked)'
  );
}

/**
 * Runs the policy explanation against an audit record's claims and request. The record names the version of the
 * policy set that decided; the answer says whether `policies` is that set, and what it means when it is not.
 */
export function explainAuditEvent(
  event: AuditEvent,
  policies: PolicySet,
  brokerIssuer: string,
  request: AccessRequest = auditedRequest(event.request),
): AuditEventExplanation {
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
  const explanation = explainClaims(policies, claims, request);
  return {
    explained: 'audit_event',
    audit_event,
    evaluated: true,
    note: policySetNote(event, policy_set, explanation.decision.granted),
    policy_set,
    ...explanation,
  };
}
