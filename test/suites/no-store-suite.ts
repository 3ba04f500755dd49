import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/** The issuer both test harnesses give the broker: policies naming it are written before it starts. */
const HARNESS_ISSUER = 'https://keyway.test';

/** Credentials a table row sends: none, a string that is no token, or a keyway token for the broker with some scopes. */
type Credential = 'none' | 'garbage' | 'keys:read' | 'audit:read' | 'revoked';

interface ErrorCase {
  readonly method: string;
  readonly path: string;
  readonly credential: Credential;
  readonly status: number;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const JSON_TYPE = { 'content-type': 'application/json' };

/** Every endpoint keyway answers, by each kind of error it answers with: no credential, a bad one, one short of a scope, a bad request. */
const CASES: readonly ErrorCase[] = [
  { method: 'GET', path: '/token', credential: 'none', status: 405 },
  { method: 'POST', path: '/token', credential: 'none', status: 400, body: 'grant_type=nope', headers: FORM },
  { method: 'POST', path: '/token', credential: 'none', status: 415, body: '{}', headers: JSON_TYPE },
  { method: 'POST', path: '/revoke', credential: 'none', status: 400, body: '', headers: FORM },
  { method: 'POST', path: '/revoke', credential: 'garbage', status: 401, body: 'token=x', headers: FORM },
  { method: 'POST', path: '/introspect', credential: 'none', status: 401, body: 'token=x', headers: FORM },
  { method: 'POST', path: '/introspect', credential: 'keys:read', status: 403, body: 'token=x', headers: FORM },
  { method: 'GET', path: '/v1/audit/events', credential: 'none', status: 401 },
  { method: 'GET', path: '/v1/audit/events', credential: 'garbage', status: 401 },
  { method: 'GET', path: '/v1/audit/events', credential: 'keys:read', status: 403 },
  { method: 'GET', path: '/v1/audit/events', credential: 'revoked', status: 401 },
  { method: 'GET', path: '/v1/audit/events?since=last%20week', credential: 'audit:read', status: 400 },
  { method: 'GET', path: '/v1/audit/alerts?limit=0', credential: 'audit:read', status: 400 },
  { method: 'GET', path: '/v1/audit/events/01NOSUCHEVENT', credential: 'audit:read', status: 404 },
  { method: 'GET', path: '/v1/inventory', credential: 'none', status: 401 },
  { method: 'GET', path: '/v1/keys', credential: 'audit:read', status: 403 },
  { method: 'GET', path: '/v1/health', credential: 'garbage', status: 401 },
  { method: 'POST', path: '/v1/policy/explain', credential: 'none', status: 401, body: '{}', headers: JSON_TYPE },
  { method: 'POST', path: '/v1/policy/who-can', credential: 'keys:read', status: 403, body: '{}', headers: JSON_TYPE },
  { method: 'GET', path: '/proxy/nowhere/x', credential: 'none', status: 401 },
  { method: 'GET', path: '/audit', credential: 'none', status: 401 },
  { method: 'POST', path: '/audit/sign-in', credential: 'none', status: 403, body: 'token=x', headers: { ...FORM, 'sec-fetch-site': 'cross-site' } },
  { method: 'GET', path: '/no/such/path', credential: 'none', status: 404 },
];

/** `Cache-Control: no-store` on every error answer (RFC 6749 §5.1, §5.2) and `nosniff` on every answer, on Node and inside workerd. */
export function noStoreSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`error answers on ${runtime}`, () => {
    let broker: BrokerHarness;
    let ci: TestIssuer;
    const tokens = new Map<Credential, string>();
    const service = (sub: string, scopes: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: ${sub} }\ngrant: { audience: ${HARNESS_ISSUER}, scopes: [${scopes}] }\n`;
    const exchange = async (sub: string) => {
      const now = Math.floor(Date.now() / 1000);
      const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID() }, { alg: 'ES256' });
      return broker.request('/token', { method: 'POST', body: exchangeForm(subject), headers: FORM });
    };
    const tokenFor = async (sub: string) => {
      const response = await exchange(sub);
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(body)).toBe(200);
      return body['access_token'] as string;
    };

    beforeAll(async () => {
      ci = freshIssuer(issuerBase(), 'no-store-ci');
      await ci.rotate({ alg: 'ES256' });
      broker = await start({ 'ops/keys.yaml': service('svc-keys', 'keys:read'), 'ops/reader.yaml': service('svc-reader', 'audit:read') }, { ownState: true });
      tokens.set('garbage', 'not.a.token');
      tokens.set('keys:read', await tokenFor('svc-keys'));
      tokens.set('audit:read', await tokenFor('svc-reader'));
      const revoked = await tokenFor('svc-reader');
      expect((await broker.request('/revoke', { method: 'POST', body: new URLSearchParams({ token: revoked }), headers: FORM })).status).toBe(200);
      tokens.set('revoked', revoked);
    });
    afterAll(() => broker.close());

    it.each(CASES)('$method $path with $credential: $status, never cached', async ({ method, path, credential, status, body, headers }) => {
      const token = tokens.get(credential);
      const response = await broker.request(path, {
        method,
        headers: { ...headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        ...(body === undefined ? {} : { body }),
      });
      expect({ status: response.status, cacheControl: response.headers.get('cache-control'), sniff: response.headers.get('x-content-type-options') }).toEqual({
        status,
        cacheControl: 'no-store',
        sniff: 'nosniff',
      });
      await response.body?.cancel();
    });

    it.each([
      ['GET', '/.well-known/jwks.json'],
      ['GET', '/.well-known/oauth-authorization-server'],
      ['GET', '/v1/audit/events?limit=1'],
    ])('%s %s: 200, never sniffed as another type', async (method, path) => {
      const response = await broker.request(path, { method, headers: { authorization: `Bearer ${tokens.get('audit:read')}` } });
      expect({ status: response.status, sniff: response.headers.get('x-content-type-options') }).toEqual({ status: 200, sniff: 'nosniff' });
      await response.body?.cancel();
    });

    it('a granted exchange: 200, never sniffed as another type', async () => {
      const response = await exchange('svc-reader');
      expect({ status: response.status, sniff: response.headers.get('x-content-type-options') }).toEqual({ status: 200, sniff: 'nosniff' });
      await response.body?.cancel();
    });
  });
}
