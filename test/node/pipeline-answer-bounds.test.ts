import { join } from 'node:path';
import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assumeRoleWithWebIdentity } from '../../src/cli/pipeline/aws-sts.ts';
import { CiTokenError, selectCiTokenSource } from '../../src/cli/pipeline/ci-token-sources.ts';
import { CloudUnavailableError } from '../../src/cli/pipeline/cloud-service-errors.ts';
import { entraAccess, googleAccess } from '../../src/cli/pipeline/cloud-token-exchanges.ts';
import { BrokerUnavailableError, exchangeForTokenMap, exchangeWithBroker } from '../../src/cli/pipeline/exchange-with-broker.ts';
import { DEFAULT_RETRY_POLICY, MAX_ANSWER_BYTES, retryingFetch, type RetryNotice } from '../../src/cli/pipeline/retrying-fetch.ts';
import { revokeKeywayToken } from '../../src/cli/pipeline/revoke-token.ts';
import { type Flood, floodingBody } from '../support/flooding-body.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { runProcess } from './node-harness.ts';

const CI_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1qb2IifQ.c2lnbmF0dXJl';
const KEYWAY_TOKEN = new UnsecuredJWT({ aud: 'https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/keyway' }).encode();
/** Where a flood stops on its own, so that a client that reads without a bound still ends (with some other error). */
const FLOOD_END_BYTES = 8 * 1024 * 1024;

/** A body that starts as the answer would and never closes the string: 16 KiB a millisecond, up to FLOOD_END_BYTES. */
function flood(floods: Flood[]): ReadableStream<Uint8Array> {
  return floodingBody(floods, { start: '{"access_token":"', chunkBytes: 16 * 1024, endBytes: FLOOD_END_BYTES });
}

/**
 * Whatever answers the pipeline side in a broker's, a CI token service's or a cloud's place (a mistyped URL, a compromised
 * proxy, the STS URL setting) can stream without end. Every answer is read through one bounded reader: past
 * MAX_ANSWER_BYTES the client stops reading, hangs up, and fails with a clear error naming the request, never a token.
 */
describe('the pipeline side reads no answer past its cap', () => {
  const floods: Flood[] = [];
  const notices: RetryNotice[] = [];
  const fetch = retryingFetch(DEFAULT_RETRY_POLICY, (notice) => notices.push(notice));
  /** Answers its metadata as a broker does, and floods every other request. */
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;
  /** Floods every request, its metadata too. */
  let flooding: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    const answer = (status: number) => new Response(flood(floods), { status, headers: { 'content-type': 'application/json' } });
    broker = await serveOnLoopback((request) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith('/.well-known/')) return Response.json({ issuer: broker.base, token_endpoint: `${broker.base}/token` });
      // A 4xx: an answer the client reads for its error, and does not retry.
      return answer(path === '/token-refused' ? 400 : 200);
    });
    flooding = await serveOnLoopback(
      (request) =>
        // Google's metadata server is known by this header: the flood is not told apart from it by its absence.
        new Response(flood(floods), {
          headers: { 'content-type': 'application/json', 'metadata-flavor': 'Google' },
          status: request.method === 'GET' ? 200 : 400,
        }),
    );
  });
  afterAll(async () => {
    await Promise.all([broker?.close(), flooding?.close()]);
  });
  beforeEach(() => {
    floods.length = 0;
    notices.length = 0;
  });

  /** The error `call` fails with, and how long it took. */
  async function failure(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
    const started = Date.now();
    const error = await call().then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    return { error, ms: Date.now() - started };
  }

  /** The flood was read no further than the cap (and what the socket buffers hold), and its reader hung up. */
  async function expectCutShort(): Promise<void> {
    await expect.poll(() => floods.length > 0 && floods.every((state) => state.cancelled), { timeout: 5000 }).toBe(true);
    for (const state of floods) expect(state.sent).toBeLessThan(FLOOD_END_BYTES);
    expect(notices).toEqual([]);
  }

  const tooLarge = (request: RegExp) => new RegExp(`the answer to ${request.source} is larger than ${MAX_ANSWER_BYTES} bytes: not read further`);
  const source = { name: 'test CI', read: async () => CI_TOKEN };

  it('the exchange: a flood from the token endpoint, or in place of the metadata, is the broker unavailable', async () => {
    const exchange = (url: string) => () => exchangeWithBroker({ url: new URL(url), source, audiences: [], scopes: [], fetch, log: () => {}, mask: () => {} });
    for (const [url, request] of [
      [broker.base, /POST http:\/\/127\.0\.0\.1:\d+\/token/],
      [flooding.base, /GET http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-authorization-server/],
    ] as const) {
      const { error, ms } = await failure(exchange(url));
      expect(error).toBeInstanceOf(BrokerUnavailableError);
      expect((error as Error).message).toMatch(tooLarge(request));
      expect((error as Error).message).not.toContain(CI_TOKEN);
      expect(ms).toBeLessThan(5000);
      await expectCutShort();
      floods.length = 0;
    }
  });

  it('the token-map exchange and a refusal: the answer is read no further than the cap, whatever its status', async () => {
    const { error } = await failure(() =>
      exchangeForTokenMap({ url: new URL(broker.base), source, audiences: ['acme/api'], scopes: [], fetch, log: () => {}, mask: () => {}, env: {} }),
    );
    expect(error).toBeInstanceOf(BrokerUnavailableError);
    expect((error as Error).message).toMatch(tooLarge(/POST http:\/\/127\.0\.0\.1:\d+\/token/));
    expect((error as Error).message).not.toContain(CI_TOKEN);
    await expectCutShort();
    floods.length = 0;

    const refused = await failure(() => fetch(`${broker.base}/token-refused`, { method: 'POST', body: 'x=1' }));
    expect((refused.error as Error).message).toMatch(tooLarge(/POST http:\/\/127\.0\.0\.1:\d+\/token-refused/));
    await expectCutShort();
  });

  it("the CI's token service (GitHub Actions, Google's metadata server): no CI token, exit 3's error, the URL's query left out", async () => {
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${flooding.base}/_apis/pipelines/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
      GCE_METADATA_HOST: new URL(flooding.base).host,
    };
    for (const from of ['github', 'google'] as const) {
      const { error, ms } = await failure(() => selectCiTokenSource({ from }, { env, fetch }).read('https://keyway.example'));
      expect(error).toBeInstanceOf(CiTokenError);
      expect((error as Error).message).toMatch(tooLarge(/GET http:\/\/127\.0\.0\.1:\d+\/[\w/-]+/));
      expect((error as Error).message).not.toMatch(/\?|request-token|audience/);
      expect(ms).toBeLessThan(5000);
      await expectCutShort();
      floods.length = 0;
    }
  });

  it("AWS STS, Google STS, Entra ID and the broker's /revoke: the keyway token's answer is read no further than the cap", async () => {
    const clouds: (() => Promise<unknown>)[] = [
      () =>
        assumeRoleWithWebIdentity({
          stsUrl: new URL(flooding.base),
          roleArn: 'arn:aws:iam::1:role/r',
          roleSessionName: 's',
          webIdentityToken: KEYWAY_TOKEN,
          fetch,
        }),
      () =>
        googleAccess({ keywayToken: KEYWAY_TOKEN, stsUrl: `${flooding.base}/v1/token`, iamCredentialsUrl: flooding.base, serviceAccount: undefined, fetch }),
      () => entraAccess({ keywayToken: KEYWAY_TOKEN, authorityUrl: flooding.base, tenantId: 't', clientId: 'c', scope: 's', fetch }),
    ];
    for (const call of clouds) {
      const { error, ms } = await failure(call);
      expect(error).toBeInstanceOf(CloudUnavailableError);
      expect((error as Error).message).toMatch(tooLarge(/POST http:\/\/127\.0\.0\.1:\d+\/[\w/.-]*/));
      expect((error as Error).message).not.toContain(KEYWAY_TOKEN);
      expect(ms).toBeLessThan(5000);
      await expectCutShort();
      floods.length = 0;
    }
    const { error } = await failure(() => revokeKeywayToken(KEYWAY_TOKEN, { broker: new URL(broker.base), fetch }));
    expect((error as Error).message).toMatch(tooLarge(/POST http:\/\/127\.0\.0\.1:\d+\/revoke/));
    await expectCutShort();
  });

  it('keyway exchange: exit 5, the cap in the job log, and neither the CI token nor the flood in its output', async () => {
    const started = Date.now();
    const result = await runProcess(process.execPath, [join(process.cwd(), 'src/cli/main.ts'), 'exchange', '--url', broker.base], {
      env: { PATH: process.env['PATH'], CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: CI_TOKEN },
    });
    expect(result.code).toBe(5);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`broker unavailable: .*${tooLarge(/POST http:\/\/127\.0\.0\.1:\d+\/token/).source}`));
    expect(result.stderr).not.toContain(CI_TOKEN);
    expect(result.stderr).not.toContain('aaaa');
    expect(Date.now() - started).toBeLessThan(20_000);
    await expectCutShort();
  }, 30_000);
});
