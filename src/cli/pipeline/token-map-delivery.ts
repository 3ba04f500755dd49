// Issue 19: where a pipeline puts a GitHub token map's tokens, one per owner, under names it can rely on.
import type { IssuedOwnerToken, IssuedTokenMap } from './exchange-with-broker.ts';

/** The prefix of the per-owner variables when none is given: KEYWAY_GITHUB_TOKEN_ACME, KEYWAY_GITHUB_TOKEN_OCTO_ORG. */
export const DEFAULT_TOKEN_MAP_PREFIX = 'KEYWAY_GITHUB_TOKEN';

/**
 * The environment variable for one owner's token: `PREFIX_OWNER`, the login upper-cased with `-` as `_`. GitHub logins
 * hold letters, digits and `-` only, and the broker keys the map by the login in lower case, so two owners never share a name.
 */
export function ownerVariable(prefix: string, owner: string): string {
  return `${prefix}_${owner.toUpperCase().replaceAll('-', '_')}`;
}

/** A step output for one owner's token: `PREFIX-owner` (the login in lower case), e.g. `token-octo-org`. */
export function ownerOutput(prefix: string, owner: string): string {
  return `${prefix}-${owner}`;
}

/** Every token of the map as variables `PREFIX_OWNER`, for a command's environment. */
export function ownerVariables(prefix: string, map: IssuedTokenMap): Record<string, string> {
  return Object.fromEntries(map.tokens.map((token) => [ownerVariable(prefix, token.owner), token.accessToken]));
}

/** `export NAME='TOKEN'` lines for `eval "$(keyway exchange --github-token-map …)"`; a GitHub token holds no quote. */
export function exportLines(prefix: string, map: IssuedTokenMap): string {
  return map.tokens.map((token) => `export ${ownerVariable(prefix, token.owner)}='${token.accessToken}'\n`).join('');
}

/** The job log's record of each token of a map: the audit event id, the owner, its hash, never the token. */
export function tokenMapGrantLines(map: IssuedTokenMap): string[] {
  return map.tokens.map(
    (token: IssuedOwnerToken) =>
      `granted: audit_event_id=${map.auditEventId ?? '-'} owner=${token.owner} access_token_sha256=${token.sha256} ` +
      `expires_at=${token.expiresAt.toISOString()} scope="${token.scope ?? ''}" repositories="${token.repositories.join(' ')}"`,
  );
}
