import type { Environment } from './ci-token-sources.ts';

/**
 * The host `gh` calls when GH_HOST=github.localhost: http://api.github.localhost/ (the one host it
 * calls over plain http), sent through HTTP_PROXY to the forwarder as an absolute-form request.
 */
export const GH_LOCALHOST_API = 'api.github.localhost';

/**
 * Variables that hold a GitHub credential, the job's OIDC token or a way to get one: a command run
 * through the proxy gets none of them (the runner's token service would let it prove the job's
 * identity itself, and so would either token CircleCI injects, whichever keyway read: v1 and v2
 * differ in `sub` only, same issuer and audience).
 */
export const WITHHELD_VARIABLES = [
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'GH_ENTERPRISE_TOKEN',
  'GITHUB_ENTERPRISE_TOKEN',
  'ACTIONS_ID_TOKEN_REQUEST_URL',
  'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'ACTIONS_RUNTIME_TOKEN',
  'CIRCLE_OIDC_TOKEN',
  'CIRCLE_OIDC_TOKEN_V2',
] as const;

/**
 * The NO_PROXY entry (either spelling) under which `gh` calls api.github.localhost itself rather than through HTTP_PROXY:
 * `*`, or that host or a domain above it with port 80 or none (`localhost`, `.localhost`, `*.github.localhost`), since
 * Go and curl read a name as covering its subdomains. gh's requests then fail, or reach whatever listens on port 80 of
 * this machine (a service container, another job's server), the per-run secret with them.
 */
export function forwarderBypass(parent: Environment): string | undefined {
  for (const name of ['NO_PROXY', 'no_proxy']) {
    for (const entry of (parent[name] ?? '').split(',').map((item) => item.trim().toLowerCase())) {
      const host = entry.replace(/^\*?\./, '').replace(/:80$/, '');
      if (entry === '*' || (host !== '' && `.${GH_LOCALHOST_API}`.endsWith(`.${host}`))) return `${name}=${entry}`;
    }
  }
  return undefined;
}

export interface ProxyAddress {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly secret: string;
}

/**
 * The command's environment: the job's, without GitHub credentials, the CI token service or any
 * variable holding the CI token itself (`ciTokens`: GitLab's id_tokens, CircleCI's, --token-env),
 * and with the forwarder's address (KEYWAY_PROXY_URL, KEYWAY_PROXY_SECRET); for the `github` upstream, for each kind of client:
 * - REST clients that take a base URL (octokit, scripts, curl): GITHUB_API_URL, KEYWAY_PROXY_URL;
 * - `gh`: GH_HOST=github.localhost, which it calls over plain http at api.github.localhost, sent
 *   here through HTTP_PROXY;
 * - all of them present KEYWAY_PROXY_SECRET, also set as GITHUB_TOKEN and GH_TOKEN because that
 *   is where clients look for a token: it opens this forwarder, for this run, and nothing else.
 */
export function proxyEnvironment(parent: Environment, address: ProxyAddress, ciTokens: readonly string[], upstream: string): Environment {
  const withheld = new Set<string>(WITHHELD_VARIABLES);
  const kept = Object.entries(parent).filter(([name, value]) => !withheld.has(name) && (value === undefined || !ciTokens.includes(value.trim())));
  const own = { ...Object.fromEntries(kept), KEYWAY_PROXY_URL: address.url, KEYWAY_PROXY_SECRET: address.secret };
  if (upstream !== 'github') return own;
  return {
    ...own,
    GITHUB_API_URL: address.url,
    GITHUB_GRAPHQL_URL: `${address.url}/graphql`,
    GITHUB_TOKEN: address.secret,
    GH_TOKEN: address.secret,
    GH_HOST: GH_LOCALHOST_API.replace(/^api\./, ''),
    HTTP_PROXY: address.url,
  };
}
