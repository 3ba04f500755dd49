import type { UsageRow } from '../../core/audit/inventory.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import { grantUsage, windowText } from '../../core/policy/suggest-narrowing.ts';
import type { AlertDraft } from './alert.ts';

const DAY = 86_400_000;

/**
 * `stale_grant`: every enforcing allow policy that granted nothing in the last `days` days, and
 * every element of a used policy's grant (scope, audience, GitHub permission or repository) never
 * granted in them. The dedupe key names the element and the `days`-long period `until` falls in,
 * so each is raised at most once per period however often the rule runs.
 */
export function staleGrantDrafts(policies: PolicySet, rows: readonly UsageRow[], until: number, days: number): Omit<AlertDraft, 'id' | 'time' | 'event_id'>[] {
  const since = until - days * DAY;
  const span = windowText({ since, until });
  const period = Math.floor(until / (days * DAY));
  return policies.policies
    .filter((policy) => policy.effect === 'allow' && policy.mode === 'enforce' && policy.grant !== undefined)
    .flatMap((policy) => grantUsage(policy, policy.file, rows, span).findings)
    .filter((finding) => finding.status === 'unused')
    .map((finding) => {
      const element = finding.element === 'policy' ? 'policy' : `${finding.element} ${finding.value}`;
      return {
        rule: 'stale_grant' as const,
        summary: `policy ${finding.policy}: ${element} ${finding.evidence}`,
        details: { policy: finding.policy, element: finding.element, value: finding.value, unused_days: days },
        dedupe: `stale_grant:${finding.policy}:${finding.element}:${finding.value}:${period}`,
      };
    });
}
