import { serveOnLoopback } from './serve-on-loopback.ts';
import { Hono } from 'hono';
import { ciClaims, type TestIssuer } from './test-issuer.ts';

/** What a fake CI token service was asked for. */
export interface CiTokenRequest {
  readonly source: 'github' | 'google' | 'buildkite';
  readonly audience: string | undefined;
}

/** A call the fake GitHub REST API received. */
export interface GithubApiCall {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
}

export interface FakeCi {
  readonly url: string;
  /** The GitHub Actions token service, as ACTIONS_ID_TOKEN_REQUEST_URL (it already carries a query, like the real one). */
  readonly githubRequestUrl: string;
  readonly githubRequestToken: string;
  /** host:port of the Google metadata server, as GCE_METADATA_HOST. */
  readonly metadataHost: string;
  readonly requests: CiTokenRequest[];
  /** The GitHub REST API, as GITHUB_API_URL. */
  readonly githubApiUrl: string;
  readonly githubApiCalls: GithubApiCall[];
  close(): Promise<void>;
}

/**
 * The CI systems' token services on 127.0.0.1, each answering the way the real one does, with
 * GitHub-shaped tokens signed by `issuer` (a real test issuer) for whatever audience was asked,
 * living five minutes as GitHub's do, or `lifetimeSeconds`.
 */
export async function startFakeCi(issuer: TestIssuer, options: { readonly lifetimeSeconds?: number } = {}): Promise<FakeCi> {
  const requestToken = `request-${crypto.randomUUID()}`;
  const requests: CiTokenRequest[] = [];
  const githubApiCalls: GithubApiCall[] = [];
  const lifetime = (): Record<string, unknown> =>
    options.lifetimeSeconds === undefined ? {} : { exp: Math.floor(Date.now() / 1000) + options.lifetimeSeconds };
  const mint = (audience: string | undefined) => issuer.sign(ciClaims(issuer.url, audience ?? 'https://github.com/acme', lifetime()));
  const app = new Hono();

  app.get('/_apis/pipelines/idtoken', async (c) => {
    if (c.req.header('authorization') !== `bearer ${requestToken}`) return c.json({ message: 'bad request token' }, 401);
    const audience = c.req.query('audience');
    requests.push({ source: 'github', audience });
    return c.json({ count: 1, value: await mint(audience) });
  });
  app.get('/computeMetadata/v1/instance/service-accounts/default/identity', async (c) => {
    if (c.req.header('metadata-flavor') !== 'Google') return c.text('Missing Metadata-Flavor:Google header.', 403);
    const audience = c.req.query('audience');
    requests.push({ source: 'google', audience });
    c.header('Metadata-Flavor', 'Google');
    return c.text(await mint(audience));
  });
  // Behind the fake `buildkite-agent oidc request-token` (see fakeBuildkiteAgent).
  app.get('/buildkite', async (c) => {
    const audience = c.req.query('audience');
    requests.push({ source: 'buildkite', audience });
    return c.text(await mint(audience));
  });

  // GitHub's REST API: revoking an installation token with the token itself.
  app.delete('/github-api/installation/token', (c) => {
    githubApiCalls.push({ method: 'DELETE', path: '/installation/token', authorization: c.req.header('authorization') });
    return c.body(null, 204);
  });

  const served = await serveOnLoopback(app.fetch);
  const host = served.base.replace('http://', '');
  return {
    url: `http://${host}`,
    githubRequestUrl: `http://${host}/_apis/pipelines/idtoken?api-version=2.0`,
    githubRequestToken: requestToken,
    metadataHost: host,
    requests,
    githubApiUrl: `http://${host}/github-api`,
    githubApiCalls,
    close: served.close,
  };
}

/** An executable `buildkite-agent` that answers `oidc request-token --audience AUD` from the fake CI. */
export function fakeBuildkiteAgent(fakeCiUrl: string): string {
  return `#!${process.execPath}
const [command, subcommand, flag, audience, ...rest] = process.argv.slice(2);
if (command !== 'oidc' || subcommand !== 'request-token' || flag !== '--audience' || !audience || rest.length > 0) {
  console.error('fatal: unexpected arguments ' + process.argv.slice(2).join(' '));
  process.exit(1);
}
fetch(${JSON.stringify(fakeCiUrl)} + '/buildkite?audience=' + encodeURIComponent(audience))
  .then((response) => response.text())
  .then((token) => process.stdout.write(token + '\\n'));
`;
}
