import { createDpopProof, type DpopKeyPair } from '../../core/dpop/dpop-fetch.ts';
import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import { isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { HANDED_BACK_HEADER } from '../../core/revocation/handed-back-tokens.ts';
import type { Environment } from './ci-token-sources.ts';
import type { FetchLike } from './retrying-fetch.ts';

/**
 * Issued token types a job can hand back when it is done, and how. A GitHub App installation
 * token lives an hour, so `keyway exchange --exec` hands it back when the command ends and the
 * GitHub Action's post step once the job no longer needs it (the broker also revokes it when
 * the policy TTL passes). keyway's own access tokens are revoked at the broker too
 * (`revokeKeywayToken`), by `--exec` when the command ends.
 */
export const GITHUB_INSTALLATION_TOKEN_TYPE = TOKEN_TYPE.githubInstallationToken;

export type Revoke = (token: string, context: { readonly broker: URL; readonly env: Environment; readonly fetch: FetchLike }) => Promise<string>;

/** A Map, not an object: the type is the broker's answer's, and must not find Object.prototype's `constructor` or `toString`. */
export const REVOCATIONS: ReadonlyMap<string, Revoke> = new Map([[GITHUB_INSTALLATION_TOKEN_TYPE, handBackGithubInstallationToken]]);

/**
 * The broker's `POST /revoke`, which revokes a GitHub token it issued at its App's own API: only the broker knows which
 * GitHub that is. The runner's `$GITHUB_API_URL` may be another deployment (a GitHub Enterprise Server job, an App on
 * github.com), which would be handed the live token and answer it with a 401. The broker answers 200 whatever the token
 * (RFC 7009), so this says what was asked, not what GitHub did. A broker that does not say it takes GitHub tokens back
 * (HANDED_BACK_HEADER: one released before it did, or one without a GitHub App) revoked nothing: the token is revoked at
 * the runner's GitHub, as such a broker's clients did.
 */
async function handBackGithubInstallationToken(token: string, { broker, env, fetch }: { broker: URL; env: Environment; fetch: FetchLike }): Promise<string> {
  const answer = await revokeAtBroker(token, { url: revocationEndpoint(broker), fetch });
  const takes = (answer.get(HANDED_BACK_HEADER) ?? '').split(',').map((type) => type.trim());
  if (takes.includes(GITHUB_INSTALLATION_TOKEN_TYPE)) {
    return "handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API";
  }
  return revokeAtRunnersGitHub(token, { env, fetch });
}

/**
 * `DELETE $GITHUB_API_URL/installation/token`, authenticated by the token itself, for a broker that takes no GitHub token
 * back. Sent over https only (http on this machine, for tests): outside GitHub Actions whoever sets CI variables names that
 * URL, and the token is live.
 */
async function revokeAtRunnersGitHub(token: string, { env, fetch }: { env: Environment; fetch: FetchLike }): Promise<string> {
  const api = env['GITHUB_API_URL'];
  if (!api) throw new Error('the broker does not take GitHub tokens back, and GITHUB_API_URL is not set: the runner names the GitHub API');
  const url = URL.canParse(api) ? new URL(api) : undefined;
  if (url === undefined || (url.protocol !== 'https:' && !isLoopbackHttpUrl(url))) {
    throw new Error(`GITHUB_API_URL ${api} is not an https URL: the token was not sent there`);
  }
  const response = await fetch(`${api.replace(/\/$/, '')}/installation/token`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
  });
  await response.body?.cancel();
  if (response.status === 204) return "revoked the GitHub installation token at the runner's GitHub (the broker does not take GitHub tokens back)";
  // GitHub's 401 (it names every answer with a request id): the token already expired or was revoked, the outcome wanted.
  // Another server's (keyway proxy's forwarder, which takes only its own secret, says keyway-error) is no such answer.
  if (response.status === 401 && response.headers.has('x-github-request-id') && !response.headers.has('keyway-error')) {
    return "the runner's GitHub no longer takes the GitHub installation token: it expired, was revoked, or is another GitHub deployment's";
  }
  const from = response.headers.has('x-github-request-id') ? 'GitHub' : `${url.host} (not GitHub: no x-github-request-id)`;
  throw new Error(`${from} answered ${response.status} to the revocation: the token was not revoked`);
}

/** A keyway token, at the broker that issued it; `dpop` is the key the token is bound to, if it is. */
export async function revokeKeywayToken(token: string, { broker, fetch, dpop }: { broker: URL; fetch: FetchLike; dpop?: DpopKeyPair }): Promise<string> {
  const url = revocationEndpoint(broker);
  const proof = dpop === undefined ? undefined : await createDpopProof(dpop, { method: 'POST', url, accessToken: token });
  await revokeAtBroker(token, { url, fetch, ...(proof === undefined ? {} : { proof }) });
  return 'revoked the keyway token';
}

function revocationEndpoint(broker: URL): string {
  return new URL('/revoke', broker).href;
}

/**
 * `POST <broker>/revoke` (RFC 7009) with the token as its own credential: its holder ends it. The broker answers 200 whatever the token was,
 * but refuses (400 invalid_dpop_proof) a DPoP-bound one without a `proof` of its key.
 */
async function revokeAtBroker(token: string, { url, fetch, proof }: { url: string; fetch: FetchLike; proof?: string }): Promise<Headers> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
  });
  await response.body?.cancel();
  if (response.status !== 200) throw new Error(`the broker answered ${response.status} to the revocation`);
  return response.headers;
}
