import { createDpopProof, type DpopKeyPair } from '../../core/dpop/dpop-fetch.ts';
import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import type { FetchLike } from './retrying-fetch.ts';

/**
 * Issued token types a job can hand back when it is done, and how. A GitHub App installation
 * token lives an hour, so `keyway exchange --exec` hands it back when the command ends and the
 * GitHub Action's post step once the job no longer needs it (the broker also revokes it when
 * the policy TTL passes). keyway's own access tokens are revoked at the broker too
 * (`revokeKeywayToken`), by `--exec` when the command ends.
 */
export const GITHUB_INSTALLATION_TOKEN_TYPE = TOKEN_TYPE.githubInstallationToken;

export type Revoke = (token: string, context: { readonly broker: URL; readonly fetch: FetchLike }) => Promise<string>;

export const REVOCATIONS: Readonly<Record<string, Revoke>> = {
  [GITHUB_INSTALLATION_TOKEN_TYPE]: handBackGithubInstallationToken,
};

/**
 * The broker's `POST /revoke`, which revokes a GitHub token it issued at its App's own API: only the broker knows which
 * GitHub that is. The runner's `$GITHUB_API_URL` may be another deployment (a GitHub Enterprise Server job, an App on
 * github.com), which would be handed the live token and answer it with a 401. The broker answers 200 whatever the token
 * (RFC 7009), so this says what was asked, not what GitHub did.
 */
async function handBackGithubInstallationToken(token: string, { broker, fetch }: { broker: URL; fetch: FetchLike }): Promise<string> {
  await revokeAtBroker(token, { url: revocationEndpoint(broker), fetch });
  return "handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API";
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
async function revokeAtBroker(token: string, { url, fetch, proof }: { url: string; fetch: FetchLike; proof?: string }): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
  });
  if (response.status !== 200) throw new Error(`the broker answered ${response.status} to the revocation`);
}
