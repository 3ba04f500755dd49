import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assumeRoleWithWebIdentity } from '../../src/cli/pipeline/aws-sts.ts';
import { CloudUnavailableError } from '../../src/cli/pipeline/cloud-service-errors.ts';
import { entraAccess, googleAccess } from '../../src/cli/pipeline/cloud-token-exchanges.ts';
import { BrokerUnavailableError, exchangeForTokenMap } from '../../src/cli/pipeline/exchange-with-broker.ts';
import { DEFAULT_RETRY_POLICY, RedirectRefusedError, retryingFetch, type RetryNotice } from '../../src/cli/pipeline/retrying-fetch.ts';
import { revokeKeywayToken } from '../../src/cli/pipeline/revoke-token.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const CI_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1qb2IifQ.c2lnbmF0dXJl';
const KEYWAY_TOKEN = new UnsecuredJWT({ aud: 'https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/keyway' }).encode();

/** A loopback server that records every request it gets: method, path and body. */
async function recordingServer(answer: (request: Request, self: string) => Response) {
  const requests: string[] = [];
  const served = await serveOnLoopback(async (request) => {
    requests.push(`${request.method} ${new URL(request.url).pathname} ${await request.text()}`);
    return answer(request, served.base);
  });
  return { url: served.base, requests, close: served.close };
}

/**
 * Every request of the pipeline side that carries a token (the CI token to the broker, a keyway token to /revoke or to a
 * cloud's STS) goes to the host it was meant for and nowhere else: a 307 or 308 would have fetch post the same body to
 * whatever host its Location names. The redirect is refused at once, not retried, and the error says so.
 */
describe('the pipeline side never follows a redirect with a token', () => {
  let elsewhere: Awaited<ReturnType<typeof recordingServer>>;
  let broker: Awaited<ReturnType<typeof recordingServer>>;
  const notices: RetryNotice[] = [];
  const fetch = retryingFetch(DEFAULT_RETRY_POLICY, (notice) => notices.push(notice));

  beforeAll(async () => {
    // Any other host a redirect could name: it answers as a token endpoint would refuse, so nothing waits on it.
    elsewhere = await recordingServer(() => Response.json({ error: 'invalid_request' }, { status: 400 }));
    // A broker (or the load balancer in front of it) that publishes its metadata, then redirects every POST elsewhere.
    broker = await recordingServer((request, self) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith('/.well-known/')) return Response.json({ issuer: self, token_endpoint: `${self}/token` });
      return new Response(null, { status: path === '/revoke' ? 308 : 307, headers: { location: `${elsewhere.url}/moved${path}` } });
    });
  });
  afterAll(async () => {
    await Promise.all([elsewhere?.close(), broker?.close()]);
  });
  beforeEach(() => {
    elsewhere.requests.length = 0;
    broker.requests.length = 0;
    notices.length = 0;
  });

  const refusal = (status: number, path: string) =>
    new RegExp(
      `POST http://127\\.0\\.0\\.1:\\d+${path} answered a ${status} redirect to ${elsewhere.url.replaceAll('.', '\\.')}; keyway does not follow redirects with a token`,
    );

  it('the token-map exchange: the CI token is posted to the broker once, and a 307 fails it as the broker unavailable', async () => {
    const source = { name: 'test CI', read: async () => CI_TOKEN };
    const asked = exchangeForTokenMap({ url: new URL(broker.url), source, audiences: ['acme/api'], scopes: [], fetch, log: () => {}, mask: () => {}, env: {} });
    const error = await asked.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(BrokerUnavailableError);
    expect((error as Error).message).toMatch(refusal(307, '/token'));
    expect((error as Error).message).not.toContain(CI_TOKEN);
    expect(broker.requests.filter((request) => request.startsWith('POST'))).toEqual([expect.stringContaining(`subject_token=${CI_TOKEN}`)]);
    expect(elsewhere.requests).toEqual([]);
    expect(notices).toEqual([]);
  });

  it('revoking a keyway token at the broker: the token goes to the broker alone, and a 308 fails the revocation with a clear message', async () => {
    const revoked = revokeKeywayToken(KEYWAY_TOKEN, { broker: new URL(broker.url), fetch });
    await expect(revoked).rejects.toThrow(RedirectRefusedError);
    await expect(revoked).rejects.toThrow(refusal(308, '/revoke'));
    expect(broker.requests).toEqual([`POST /revoke token=${KEYWAY_TOKEN}&token_type_hint=access_token`]);
    expect(elsewhere.requests).toEqual([]);
    expect(notices).toEqual([]);
  });

  it("AWS STS, Google STS and Entra ID: the keyway token goes to the configured endpoint only, and the cloud's failure names the redirect", async () => {
    const calls: [string, () => Promise<unknown>][] = [
      [
        '/',
        () =>
          assumeRoleWithWebIdentity({
            stsUrl: new URL(broker.url),
            roleArn: 'arn:aws:iam::1:role/r',
            roleSessionName: 's',
            webIdentityToken: KEYWAY_TOKEN,
            fetch,
          }),
      ],
      [
        '/v1/token',
        () => googleAccess({ keywayToken: KEYWAY_TOKEN, stsUrl: `${broker.url}/v1/token`, iamCredentialsUrl: broker.url, serviceAccount: undefined, fetch }),
      ],
      ['/t/oauth2/v2.0/token', () => entraAccess({ keywayToken: KEYWAY_TOKEN, authorityUrl: broker.url, tenantId: 't', clientId: 'c', scope: 's', fetch })],
    ];
    for (const [path, call] of calls) {
      const error = await call().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(CloudUnavailableError);
      expect((error as Error).message).toMatch(refusal(307, path.replaceAll('.', '\\.')));
    }
    const paths = calls.map(([path]) => path);
    expect(broker.requests.map((request) => request.split(' ').slice(0, 2).join(' '))).toEqual(paths.map((path) => `POST ${path}`));
    expect(elsewhere.requests).toEqual([]);
    expect(notices).toEqual([]);
  });

  it('a caller that chooses how redirects are handled keeps its choice; a 3xx without a Location is an answer like any other', async () => {
    const manual = await fetch(`${broker.url}/token`, { method: 'POST', body: 'x=1', redirect: 'manual' });
    expect(manual.status).toBe(307);
    const followed = await fetch(`${broker.url}/anything`, { redirect: 'follow' });
    expect(followed.status).toBe(400);
    expect(elsewhere.requests).toEqual(['GET /moved/anything ']);

    const unmoved = await recordingServer(() => new Response(null, { status: 304 }));
    try {
      expect((await fetch(unmoved.url)).status).toBe(304);
    } finally {
      await unmoved.close();
    }
  });
});
