import { request } from 'node:http';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, ID_TOKEN, type BrokerHarness } from '../suites/exchange-suite.ts';
import { BROKER_ISSUER, startNodeHarness } from './node-harness.ts';

/** What a client, a CDN or a proxy in front of the broker may say of the origin it asked: each names another. */
const ANOTHER_ORIGIN = {
  host: 'evil.example',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  'x-forwarded-port': '8443',
  forwarded: 'host=evil.example;proto=http',
} as const;

/** One request with the Host header given (fetch sends its own): the answer's status, headers and JSON. */
function send(
  url: string,
  path: string,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sent = request({ hostname, port, path, method: options.method ?? 'GET', headers: { ...ANOTHER_ORIGIN, ...options.headers } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(text) as Record<string, unknown> }));
    });
    sent.on('error', reject);
    sent.end(options.body);
  });
}

describe('the issuer keyway publishes and signs as', () => {
  let broker: BrokerHarness;
  let url: string;
  let github: TestIssuer;

  beforeAll(async () => {
    github = freshIssuer(inject('testIssuerBase'), 'issuer-identity');
    broker = await startNodeHarness(
      {
        'deploy.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://deploy.acme.dev\n`,
        'cloud.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_id: "734202"\ngrant:\n  cloud:\n    provider: aws\n    roles: [arn:aws:iam::123456789012:role/deploy]\n`,
      },
      // Trusted forwarding headers too: they name the client, never the origin.
      { settings: { KEYWAY_TRUSTED_PROXIES: '127.0.0.1' } },
    );
    url = broker.url as string;
  });
  afterAll(() => broker.close());

  it('is KEYWAY_ISSUER in the metadata whatever Host or forwarding headers ask: a cache in front keys on none of them', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const { status, body } = await send(url, path);
      expect(status).toBe(200);
      expect(body).toMatchObject({ issuer: BROKER_ISSUER, token_endpoint: `${BROKER_ISSUER}/token`, jwks_uri: `${BROKER_ISSUER}/.well-known/jwks.json` });
    }
    const jwks = await send(url, '/.well-known/jwks.json');
    expect(jwks.headers['cache-control']).toBe('public, max-age=300');
    expect(jwks.body).toEqual(await (await fetch(`${url}/.well-known/jwks.json`)).json());
  });

  it('is KEYWAY_ISSUER in every token minted for a request that names another origin, an access token or a cloud token', async () => {
    const exchange = async (repositoryId: string, extra: Record<string, string> = {}) => {
      const body = exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, { repository_id: repositoryId })), extra).toString();
      const answer = await send(url, '/token', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body['access_token'] as string;
    };
    const published = (await send(url, '/.well-known/jwks.json')).body['keys'] as { kid: string }[];
    const access = await exchange('734201');
    const cloud = await exchange('734202', { requested_token_type: ID_TOKEN });
    expect([decodeProtectedHeader(access).typ, decodeProtectedHeader(cloud).typ, decodeJwt(cloud).aud]).toEqual(['at+jwt', 'JWT', 'sts.amazonaws.com']);
    for (const token of [access, cloud]) {
      expect(decodeJwt(token).iss).toBe(BROKER_ISSUER);
      expect(published.map((key) => key.kid)).toContain(decodeProtectedHeader(token).kid);
    }
  });
});
