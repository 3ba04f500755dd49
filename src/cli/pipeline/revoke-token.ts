import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import type { Environment } from './ci-token-sources.ts';
import type { FetchLike } from './retrying-fetch.ts';

/**
 * Issued token types a job can hand back when it is done, and how. A GitHub App installation
 * token lives an hour, so `keyway exchange --exec` revokes it when the command ends and the
 * GitHub Action's post step once the job no longer needs it (the broker also revokes it when
 * the policy TTL passes). keyway's own access tokens are revoked at the broker
 * (`revokeKeywayToken`), by `--exec` when the command ends.
 */
export const GITHUB_INSTALLATION_TOKEN_TYPE = TOKEN_TYPE.githubInstallationToken;

export type Revoke = (token: string, context: { readonly env: Environment; readonly fetch: FetchLike }) => Promise<string>;

export const REVOCATIONS: Readonly<Record<string, Revoke>> = {
  [GITHUB_INSTALLATION_TOKEN_TYPE]: revokeGithubInstallationToken,
};

/** `DELETE $GITHUB_API_URL/installation/token`, authenticated by the token itself. */
async function revokeGithubInstallationToken(token: string, { env, fetch }: { env: Environment; fetch: FetchLike }): Promise<string> {
  const api = env['GITHUB_API_URL'];
  if (!api) throw new Error('GITHUB_API_URL is not set: the runner names the GitHub API');
  const response = await fetch(`${api.replace(/\/$/, '')}/installation/token`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
  });
  // 401: it already expired or was revoked, which is the outcome wanted.
  if (response.status !== 204 && response.status !== 401) throw new Error(`GitHub answered ${response.status} to the revocation`);
  return response.status === 204 ? 'revoked the GitHub installation token' : 'the GitHub installation token had already expired';
}

/** `POST <broker>/revoke` (RFC 7009) with the token as its own credential: its holder ends it. The broker answers 200 whatever the token was. */
export async function revokeKeywayToken(token: string, { broker, fetch }: { broker: URL; fetch: FetchLike }): Promise<string> {
  const response = await fetch(new URL('/revoke', broker).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
  });
  if (response.status !== 200) throw new Error(`the broker answered ${response.status} to the revocation`);
  return 'revoked the keyway token';
}
