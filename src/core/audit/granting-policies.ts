import type { AuditEvent } from './audit-event.ts';

/**
 * The policies that granted a record's tokens: `policy.granted_by`, and for a GitHub token map (issue 19) each owner's
 * (`github_tokens[].granted_by`), once each. None for a record that is not a grant.
 */
export function grantingPolicies(event: AuditEvent): string[] {
  if (event.decision !== 'granted') return [];
  const ids = [event.policy?.granted_by, ...(event.github_tokens ?? []).map((token) => token.granted_by)];
  return [...new Set(ids.filter((id): id is string => id !== undefined))];
}
