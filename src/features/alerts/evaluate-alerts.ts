import type { AuditEvent } from '../../core/audit/audit-event.ts';
import { inert } from '../../core/inert-text.ts';
import { clientNetwork } from '../../core/limits/network-of.ts';
import { replacedReason, spendsPastUnverifiedBudget } from '../../core/limits/unverified-record-budget.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import type { AlertDraft, AlertRule } from './alert.ts';
import { recordedCaller, type AlertObservation } from './alert-store.ts';
import type { AlertSettings } from './alert-settings.ts';

type Draft = Omit<AlertDraft, 'id' | 'time' | 'event_id'>;

/**
 * The anomaly rules, as a pure function of one event, what the log says around it, and the
 * policies now loaded. A burst fires once, on the denial that reaches the threshold. `shard`:
 * the chain the event is in, where there are several (the Workers shards).
 */
export function evaluateAlerts(event: AuditEvent, facts: AlertObservation, policies: PolicySet, settings: AlertSettings, shard?: number): Draft[] {
  const drafts: (Draft & { rule: AlertRule })[] = [];
  const identity = describeIdentity(event);
  // Two accounts may share a subject (recordedCaller): the alert names whose it is.
  const account = recordedCaller(event)?.account;
  const whose: { account?: string } = account === undefined ? {} : { account: inert(account) };
  const window = `${settings.burstWindowSeconds}s`;
  const ip = event.request.client_ip;

  if (facts.identityDenials === settings.burstThreshold) {
    drafts.push({
      rule: 'denial_burst_identity',
      summary: `${facts.identityDenials} denied exchanges for ${identity} within ${window}`,
      details: { identity, ...whose, denials: facts.identityDenials, window_seconds: settings.burstWindowSeconds, last_reason: event.reason },
    });
  }
  if (ip !== undefined && facts.addressDenials === settings.burstThreshold) {
    // Counted by client network, as the per-client rate limit counts: an IPv6 host spreading its requests over its /64 is one client.
    const client = clientNetwork(ip);
    drafts.push({
      rule: 'denial_burst_address',
      summary: `${facts.addressDenials} refusals from ${client} within ${window}`,
      details: {
        client_network: client,
        client_ip: ip,
        denials: facts.addressDenials,
        window_seconds: settings.burstWindowSeconds,
        last_reason: event.reason,
      },
    });
  }
  const sha256 = event.subject_token?.sha256;
  if (sha256 !== undefined && facts.earlierPresentations > 0 && (facts.earlierGrant || event.decision === 'granted')) {
    drafts.push({
      rule: 'subject_token_replayed',
      summary: `the same subject token was presented again (${facts.earlierPresentations + 1} times) for ${identity}`,
      details: { identity, subject_token_sha256: sha256, presentations: facts.earlierPresentations + 1, decision: event.decision },
      dedupe: `subject_token_replayed:${sha256}`,
    });
  }
  for (const policy of facts.firstForPolicies) {
    drafts.push({ rule: 'first_policy_exchange', summary: `first exchange ever granted by policy ${policy}, to ${identity}`, details: { policy, identity } });
  }
  if (facts.newNetwork && ip !== undefined) {
    drafts.push({ rule: 'new_network', summary: `${identity} exchanged from a new network (${ip})`, details: { identity, ...whose, client_ip: ip } });
  }
  const last = facts.lastGrantedPolicy;
  if (last !== undefined && !policies.policies.some((active) => active.id === last)) {
    const inactive = policies.inactive.find((candidate) => candidate.id === last);
    const state = inactive === undefined ? 'deleted' : inactive.why === 'disabled: true' ? 'disabled' : 'inactive';
    drafts.push({
      rule: 'retired_policy',
      summary: `${identity} is still exchanging, but policy ${last} that granted it is now ${state}`,
      details: { identity, ...whose, policy: last, policy_state: state, reason: event.reason },
      dedupe: `retired_policy:${JSON.stringify([identity, account ?? null, last])}`,
    });
  }
  if (spendsPastUnverifiedBudget(event)) {
    // Once per window and chain: under a flood each refill of the budget starts another run, and each run's first refusal is
    // recorded. Each chain has a budget of its own, so one spent first (a decoy's) must not take the alert of another's.
    const period = Math.floor(Date.parse(event.time) / (settings.burstWindowSeconds * 1000));
    const chain = shard === undefined ? undefined : String(shard);
    drafts.push({
      rule: 'unverified_limit_reached',
      summary: `refusals of tokens that did not verify used up the unverified limit's budget${chain === undefined ? '' : ` of audit shard ${chain}`}: until it refills, only the first of each run of them is recorded`,
      details: {
        refused_as: replacedReason(event) ?? event.reason,
        ...(ip === undefined ? {} : { client_ip: ip }),
        ...(chain === undefined ? {} : { shard: chain }),
        window_seconds: settings.burstWindowSeconds,
      },
      dedupe: chain === undefined ? `unverified_limit_reached:${period}` : `unverified_limit_reached:${chain}:${period}`,
    });
  }
  return drafts.filter((draft) => settings.rules.has(draft.rule));
}

/**
 * The identity as summaries and `details.identity` name it, made inert (core/inert-text.ts): a claimed subject is anyone's
 * to choose, and a webhook's receiver shows it as it comes (a chat message, a pager, a terminal), so a line break must not
 * push "(claimed, …)" out of sight, nor an override reverse it.
 */
function describeIdentity(event: AuditEvent): string {
  const issuer = event.issuer ?? event.subject_token?.claimed_iss ?? 'unknown issuer';
  const subject = event.subject ?? event.subject_token?.claimed_sub ?? 'unknown subject';
  return inert(event.issuer === undefined ? `${subject} (claimed, from ${issuer})` : `${subject} (${issuer})`);
}
