import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import type { Environment } from './ci-token-sources.ts';
import type { FetchLike } from './retrying-fetch.ts';

/**
 * Issued token types a job can hand back when it is done, and how. keyway's own access tokens
 * are not here: they live minutes and have no revocation endpoint. A GitHub App installation
 * token lives an hour, so `keyway exchange --exec` revokes it when the command ends and the
 * GitHub Action's post step once the job no longer needs it (the broker also revokes it when
 * the policy TTL passes).
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
