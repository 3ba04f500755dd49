import { base64url, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../../src/core/errors/reasons.ts';
import type { OAuthErrorCode } from '../../src/http/oauth-errors.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The two RFC 7523 shapes a JWT comes in, each a form around the same CI token. */
const SHAPES = {
  'jwt-bearer': (token: string, extra: Record<string, string> = {}) => new URLSearchParams({ grant_type: JWT_BEARER, assertion: token, ...extra }),
  'client_credentials with client_assertion': (token: string, extra: Record<string, string> = {}) =>
    new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: token, ...extra }),
} as const;
type Shape = keyof typeof SHAPES;

/** RFC 7523 grants at `POST /token`: the same verify → decide → mint → audit path and the same attacks as token exchange, on Node and in workerd. */
export function jwtBearerSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`JWT bearer grants on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let service: TestIssuer;
    let stranger: TestIssuer;
    const now = () => Math.floor(Date.now() / 1000);
    const claims = (overrides: Record<string, unknown> = {}) => ({
      iss: service.url,
      aud: broker.issuer,
      sub: 'svc-b',
      iat: now(),
      exp: now() + 300,
      jti: crypto.randomUUID(),
      ...overrides,
    });
    const good = (overrides: Record<string, unknown> = {}) => service.sign(claims(overrides));

    beforeAll(async () => {
      service = freshIssuer(issuerBase(), 'bearer-svc');
      stranger = freshIssuer(issuerBase(), 'bearer-stranger');
      broker = await start({
        'services/b.yaml': `version: 1\nissuer: "${service.url}"\nmatch: { sub: svc-b }\ngrant: { audience: https://b.example, scopes: [b:read, b:write] }\n`,
      });
    });
    afterAll(() => broker.close());

    describe.each(Object.keys(SHAPES) as Shape[])('%s', (shape) => {
      const form = SHAPES[shape];

      it('grants through the same policy, and the record names the grant', async () => {
        const result = await postToken(broker, form(await good(), { scope: 'b:read' }));
        expect(result.status, JSON.stringify(result.body)).toBe(200);
        expect(result.body).toMatchObject({ token_type: 'Bearer', scope: 'b:read', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
        expect(decodeJwt(result.body['access_token'] as string)).toMatchObject({ aud: 'https://b.example', src_iss: service.url, src_sub: 'svc-b' });
        const event = await broker.auditEvent(result.body['audit_event_id'] as string);
        expect(event).toMatchObject({ decision: 'granted', request: { grant_type: shape === 'jwt-bearer' ? JWT_BEARER : 'client_credentials' } });
      });

      const attacks: [string, () => Promise<URLSearchParams>, OAuthErrorCode, Reason][] = [
        [
          'alg none',
          async () => form(`${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify(claims()))}.`),
          'invalid_request',
          'algorithm_not_allowed',
        ],
        [
          'a signature by a key the issuer never published',
          async () => form(await service.sign(claims(), { key: 'foreign' })),
          'invalid_request',
          'signature_invalid',
        ],
        ['an expired assertion', async () => form(await good({ iat: now() - 600, exp: now() - 300 })), 'invalid_request', 'token_expired'],
        ['another audience', async () => form(await good({ aud: 'https://elsewhere.example' })), 'invalid_request', 'audience_mismatch'],
        ['an untrusted issuer', async () => form(await stranger.sign({ ...claims(), iss: stranger.url })), 'invalid_request', 'issuer_untrusted'],
        ['a jku header', async () => form(await service.sign(claims(), { header: { jku: `${service.url}/trap` } })), 'invalid_request', 'header_forbidden'],
        ['garbage', async () => form('garbage'), 'invalid_request', 'token_malformed'],
        ['a scope the policy does not grant', async () => form(await good(), { scope: 'admin' }), 'invalid_scope', 'scope_not_granted'],
        ['no assertion', async () => form(''), 'invalid_request', 'malformed_request'],
        ['a subject_token beside it', async () => form(await good(), { subject_token: await good() }), 'invalid_request', 'malformed_request'],
        ['an actor_token beside it', async () => form(await good(), { actor_token: await good() }), 'invalid_request', 'malformed_request'],
        [
          'a subject_token_type beside it',
          async () => form(await good(), { subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
          'invalid_request',
          'malformed_request',
        ],
      ];
      it.each(attacks)('refuses %s, with no token and a record', async (_name, make, error, reason) => {
        await expectRefusal(broker, await postToken(broker, await make()), { error, reason });
      });

      it('refuses a repeated assertion', async () => {
        const token = await good();
        const twice = form(token);
        twice.append(shape === 'jwt-bearer' ? 'assertion' : 'client_assertion', token);
        await expectRefusal(broker, await postToken(broker, twice), { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('names the missing parameter', async () => {
        const result = await postToken(broker, form(''));
        await expectRefusal(broker, result, { error: 'invalid_request', reason: 'malformed_request' });
        expect(result.body['error_description']).toBe(`${shape === 'jwt-bearer' ? 'assertion' : 'client_assertion'} is missing`);
      });

      it('takes a parameter sent without a value as omitted (RFC 6749 §3.1), an exchange-only one and a second assertion too', async () => {
        const sent = form(await good(), { subject_token: '', actor_token: '', client_id: '' });
        sent.append(shape === 'jwt-bearer' ? 'assertion' : 'client_assertion', '');
        const result = await postToken(broker, sent);
        expect(result.status, JSON.stringify(result.body)).toBe(200);
      });

      it('refuses a repeated grant_type, as token exchange does (RFC 6749 §3.2: no parameter more than once)', async () => {
        const twice = form(await good());
        twice.append('grant_type', 'urn:ietf:params:oauth:grant-type:token-exchange');
        await expectRefusal(broker, await postToken(broker, twice), { error: 'invalid_request', reason: 'malformed_request' });
      });
    });

    describe('client_credentials', () => {
      const form = SHAPES['client_credentials with client_assertion'];
      it('accepts a client_id that is the assertion sub, and refuses another', async () => {
        expect((await postToken(broker, form(await good(), { client_id: 'svc-b' }))).status).toBe(200);
        await expectRefusal(broker, await postToken(broker, form(await good(), { client_id: 'svc-a' })), {
          error: 'invalid_request',
          reason: 'malformed_request',
        });
      });

      it('refuses a repeated client_id, even one naming the sub twice', async () => {
        const twice = form(await good(), { client_id: 'svc-b' });
        twice.append('client_id', 'svc-b');
        await expectRefusal(broker, await postToken(broker, twice), { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('refuses a client_assertion_type other than jwt-bearer, or none', async () => {
        const token = await good();
        const wrong = new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:example:saml', client_assertion: token });
        await expectRefusal(broker, await postToken(broker, wrong), { error: 'invalid_request', reason: 'malformed_request' });
        await expectRefusal(broker, await postToken(broker, new URLSearchParams({ grant_type: 'client_credentials', client_assertion: token })), {
          error: 'invalid_request',
          reason: 'malformed_request',
        });
      });
    });
  });
}
