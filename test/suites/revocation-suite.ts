import { base64url, createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import { presentedToken } from '../../src/core/audit/presented-token.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AccessTokenError, verifyAccessToken, type RevocationCheck, type VerifyAccessTokenOptions } from '../../src/core/mint/verify-access-token.ts';
import { REASONS, type Reason } from '../../src/core/errors/reasons.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import { athOf, DpopKey, type ProofOptions } from '../support/dpop-key.ts';
import { MemoryDpopReplayStore } from '../../src/core/dpop/dpop-replay.ts';
import { exchangeForm, freshIssuer, type BrokerClient, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';

/**
 * verifyAccessToken's options for a service of https://a.example that trusts `broker`'s published keys and asks it, with
 * `credential`, whether a token was revoked: every time, unless `revocation` says otherwise.
 */
async function resourceServer(broker: BrokerClient, credential: string, revocation: Partial<RevocationCheck> = {}): Promise<VerifyAccessTokenOptions> {
  const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;
  return {
    issuer: broker.issuer,
    audience: 'https://a.example',
    keys: createLocalJWKSet(jwks),
    revocation: { credential: () => credential, cacheSeconds: 0, fetch: (input, init) => broker.request(new URL(String(input)).pathname, init), ...revocation },
  };
}

/** The key's public JWK with its coordinates as one-element arrays, which WebCrypto imports: not a JWK, whose members are strings. */
const arrayCoordinates = (key: DpopKey) => ({ kty: 'EC', crv: 'P-256', x: [key.publicJwk.x], y: [key.publicJwk.y] }) as never;

/** The issuer both test harnesses give the broker: policies naming it are written before it starts. */
const HARNESS_ISSUER = 'https://keyway.test';

/** RFC 7009 `POST /revoke` and RFC 7662 `POST /introspect`, and `verifyAccessToken` seeing revocations, on Node and inside workerd. */
export function revocationSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`revocation and introspection on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let ci: TestIssuer;
    /** The broker's clock runs this many ms ahead of the test's, to see a token expire without waiting. */
    let skew = 0;
    const now = () => Math.floor(Date.now() / 1000);
    /** A keyway token for `sub`, from a subject token of the broker's time (its clock skewed or not). */
    const tokenFor = async (sub: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) => {
      const at = Math.floor((Date.now() + skew) / 1000);
      const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub, iat: at, exp: at + 300, jti: crypto.randomUUID() }, { alg: 'ES256' });
      const response = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(subject, extra),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(body)).toBe(200);
      return body['access_token'] as string;
    };
    const form = (token: string) => new URLSearchParams({ token, token_type_hint: 'access_token' });
    const revoke = (token: string, authorization?: string) =>
      broker.request('/revoke', {
        method: 'POST',
        body: form(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization === undefined ? {} : { authorization }) },
      });
    const introspect = async (token: string, authorization?: string) => {
      const response = await broker.request('/introspect', {
        method: 'POST',
        body: form(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: authorization ?? `Bearer ${await tokenFor('svc-rs')}` },
      });
      return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
    };
    /** The newest audit record about a token (by its hash; one not shaped as a signed JWT by its length) with this reason, read through the audit API. */
    const recordAbout = async (token: string, reason: Reason): Promise<AuditEvent | undefined> => {
      const reader = await tokenFor('svc-reader');
      const response = await broker.request(`/v1/audit/events?reason=${reason}&limit=500`, { headers: { authorization: `Bearer ${reader}` } });
      expect(response.status).toBe(200);
      const { events } = (await response.json()) as { events: AuditEvent[] };
      const { digest } = presentedToken(token, sha256Hex);
      return events.find((event) => ('sha256' in digest ? event.subject_token?.sha256 === digest.sha256 : event.subject_token?.length === digest.length));
    };
    const service = (sub: string, audience: string, scopes: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: ${sub} }\ngrant: { audience: ${audience}, scopes: [${scopes}] }\n`;

    beforeAll(async () => {
      ci = freshIssuer(issuerBase(), 'revocation-ci');
      await ci.rotate({ alg: 'ES256' });
      broker = await start(
        {
          'svc/app.yaml': service('svc-a', 'https://a.example', 'a:read'),
          // Neither name is reserved, so a policy may set them (templated from the CI token, even): introspection's own win.
          'svc/look-alike.yaml': service('svc-look-alike', 'https://a.example', 'a:read').replace(
            'scopes: [a:read] }',
            'scopes: [a:read], claims: { active: "false", token_type: Bearer } }',
          ),
          'ops/introspector.yaml': service('svc-rs', HARNESS_ISSUER, 'tokens:introspect'),
          'ops/revoker.yaml': service('svc-ops', HARNESS_ISSUER, 'tokens:revoke'),
          'ops/reader.yaml': service('svc-reader', HARNESS_ISSUER, 'audit:read'),
        },
        { now: () => Date.now() + skew, ownState: true },
      );
      expect(broker.issuer).toBe(HARNESS_ISSUER);
    });
    afterAll(() => broker.close());

    it("lets a token's holder revoke it: introspection then says inactive, and the record names the token", async () => {
      const token = await tokenFor('svc-a');
      expect((await introspect(token)).body['active']).toBe(true);
      const response = await revoke(token);
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      // Without a GitHub App, no GitHub token to take back: a pipeline revokes one where the runner's GitHub is.
      expect(response.headers.get('keyway-revokes')).toBeNull();
      expect(await introspect(token)).toMatchObject({ status: 200, body: { active: false } });
      expect((await introspect(token)).body).toEqual({ active: false });
      const record = await recordAbout(token, 'token_revoked');
      expect(record).toMatchObject({ decision: 'granted', detail: 'revoked by its holder' });
      expect(JSON.stringify(record)).not.toContain(token);
      expect((await revoke(token)).status).toBe(200);
    });

    it('lets an operator with tokens:revoke revoke any token, and records who', async () => {
      const token = await tokenFor('svc-a');
      expect((await revoke(token, `Bearer ${await tokenFor('svc-ops')}`)).status).toBe(200);
      expect((await introspect(token)).body).toEqual({ active: false });
      expect(await recordAbout(token, 'token_revoked')).toMatchObject({
        subject: expect.stringContaining('svc-ops'),
        detail: expect.stringMatching(/^revoked by operator/),
      });
    });

    describe('a DPoP-bound token (cnf.jkt), revoked by its holder', () => {
      const revokeWith = (token: string, proof?: string) =>
        broker.request('/revoke', {
          method: 'POST',
          body: form(token),
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) },
        });
      const boundToken = async (key: DpopKey) => tokenFor('svc-a', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) });
      const revokeProof = async (key: DpopKey, token: string, options: ProofOptions = {}) =>
        key.proof('POST', `${broker.issuer}/revoke`, { ath: await athOf(token), ...options });

      it('is ended with a DPoP proof of its key, and a retry of that revocation is answered 200 as any other', async () => {
        const key = await DpopKey.generate();
        const token = await boundToken(key);
        const proof = await revokeProof(key, token);
        expect((await revokeWith(token, proof)).status).toBe(200);
        expect((await introspect(token)).body).toEqual({ active: false });
        expect(await recordAbout(token, 'token_revoked')).toMatchObject({ detail: 'revoked by its holder' });
        expect((await revokeWith(token, proof)).status).toBe(200);
      });

      const refusals: [string, (key: DpopKey, token: string) => Promise<string | undefined>][] = [
        ['no proof (a copy of the token alone)', async () => undefined],
        ['a proof of another key', async (_key, token) => revokeProof(await DpopKey.generate(), token)],
        ['a proof for /token', async (key, token) => key.proof('POST', `${broker.issuer}/token`, { ath: await athOf(token) })],
        ['a proof without ath', async (key) => key.proof('POST', `${broker.issuer}/revoke`)],
        ['a proof with the ath of another token', async (key) => revokeProof(key, await tokenFor('svc-a'))],
        ['a proof whose jwk x and y are arrays', async (key, token) => revokeProof(key, token, { jwk: arrayCoordinates(key) })],
      ];
      it.each(refusals)('is refused with %s: 400 invalid_dpop_proof and a record, and stays live', async (_name, make) => {
        const key = await DpopKey.generate();
        const token = await boundToken(key);
        const response = await revokeWith(token, await make(key, token));
        const body = (await response.json()) as Record<string, unknown>;
        expect({ status: response.status, cacheControl: response.headers.get('cache-control'), body }).toMatchObject({
          status: 400,
          cacheControl: 'no-store',
          body: { error: 'invalid_dpop_proof', audit_event_id: expect.any(String) },
        });
        expect(await recordAbout(token, 'dpop_proof_invalid')).toMatchObject({
          id: body['audit_event_id'],
          decision: 'denied',
          detail: expect.stringMatching(/^not revoked: /),
        });
        expect((await introspect(token)).body).toMatchObject({ active: true });
      });

      it('is refused with a proof whose jti its key already used (here at /token): dpop_proof_replayed', async () => {
        const key = await DpopKey.generate();
        const jti = crypto.randomUUID();
        const token = await tokenFor('svc-a', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`, { jti }) });
        const response = await revokeWith(token, await revokeProof(key, token, { jti }));
        expect({ status: response.status, body: await response.json() }).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof' } });
        expect(await recordAbout(token, 'dpop_proof_replayed')).toMatchObject({ detail: expect.stringMatching(/^not revoked: .*already used/) });
        expect((await introspect(token)).body).toMatchObject({ active: true });
      });

      it('is refused without a proof whether or not it is still live: the answer tells a copy nothing more than its claims', async () => {
        const key = await DpopKey.generate();
        const token = await boundToken(key);
        const unproved = async (bound: string) => {
          const response = await revokeWith(bound);
          const { audit_event_id: id, ...answer } = (await response.json()) as Record<string, unknown>;
          expect(await recordAbout(bound, 'dpop_proof_invalid')).toMatchObject({ id, decision: 'denied' });
          return { status: response.status, ...answer };
        };
        const live = await unproved(await boundToken(await DpopKey.generate()));
        expect(live).toMatchObject({ status: 400, error: 'invalid_dpop_proof' });
        expect((await revokeWith(token, await revokeProof(key, token))).status).toBe(200);
        expect(await unproved(token)).toEqual(live);
      });

      it('keeps the jti of the proof it was revoked with for as long as that proof is accepted: at /token 65 s after its iat it is a replay', async () => {
        const key = await DpopKey.generate();
        const token = await boundToken(key);
        const jti = crypto.randomUUID();
        const iat = now();
        expect((await revokeWith(token, await revokeProof(key, token, { jti, iat }))).status).toBe(200);
        skew = (iat + 65) * 1000 - Date.now();
        const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub: 'svc-a', iat, exp: iat + 300, jti: crypto.randomUUID() }, { alg: 'ES256' });
        let again: { status: number; body: Record<string, unknown> };
        try {
          const response = await broker.request('/token', {
            method: 'POST',
            body: exchangeForm(subject),
            headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`, { jti, iat: iat + 65 }) },
          });
          again = { status: response.status, body: (await response.json()) as Record<string, unknown> };
        } finally {
          skew = 0;
        }
        expect(again).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof' } });
        expect(await recordAbout(subject, 'dpop_proof_replayed')).toMatchObject({ id: again.body['audit_event_id'] });
      });

      it('is refused without a proof when its cnf is null: a binding it cannot read asks for a proof all the same', async () => {
        const [header, payload, signature] = (await tokenFor('svc-a')).split('.') as [string, string, string];
        const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as Record<string, unknown>;
        const token = `${header}.${base64url.encode(JSON.stringify({ ...claims, cnf: null }))}.${signature}`;
        const response = await revokeWith(token);
        const body = (await response.json()) as Record<string, unknown>;
        expect({ status: response.status, error: body['error'] }).toEqual({ status: 400, error: 'invalid_dpop_proof' });
        expect(await recordAbout(token, 'dpop_proof_invalid')).toMatchObject({ id: body['audit_event_id'] });
      });

      it('is ended by an operator with tokens:revoke without any proof, as any token', async () => {
        const token = await boundToken(await DpopKey.generate());
        expect((await revoke(token, `Bearer ${await tokenFor('svc-ops')}`)).status).toBe(200);
        expect((await introspect(token)).body).toEqual({ active: false });
      });
    });

    it('refuses a caller whose token lacks tokens:revoke, or is not a keyway token, and revokes nothing', async () => {
      const token = await tokenFor('svc-a');
      const unscoped = await revoke(token, `Bearer ${await tokenFor('svc-reader')}`);
      expect(unscoped.status).toBe(403);
      expect(((await unscoped.json()) as Record<string, unknown>)['error']).toBe('insufficient_scope');
      expect((await revoke(token, 'Bearer not-a-token')).status).toBe(401);
      expect((await revoke(token, `Bearer ${await tokenFor('svc-a')}`)).status).toBe(401);
      expect((await introspect(token)).body['active']).toBe(true);
    });

    it('the operator APIs refuse a revoked operator token: /v1/*, /introspect, and /revoke as operator', async () => {
      const reader = await tokenFor('svc-reader');
      const events = () => broker.request('/v1/audit/events?limit=1', { headers: { authorization: `Bearer ${reader}` } });
      expect((await events()).status).toBe(200);
      expect((await revoke(reader)).status).toBe(200);
      const refused = await events();
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      const body = (await refused.json()) as Record<string, unknown>;
      expect(body).toEqual({ error: 'invalid_token', error_description: 'the access token was revoked', audit_event_id: expect.any(String) });
      // Recorded, naming the operator whose token it was (the token by its hash).
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
        reason: 'operator_token_invalid',
        decision: 'denied',
        issuer: broker.issuer,
        subject: decodeJwt(reader).sub,
        subject_token: { sha256: sha256Hex(reader), jti: decodeJwt(reader).jti },
        detail: 'GET /v1/audit/events: the access token was revoked',
      });

      const token = await tokenFor('svc-a');
      const introspector = `Bearer ${await tokenFor('svc-rs')}`;
      expect((await introspect(token, introspector)).body).toMatchObject({ active: true });
      expect((await revoke(introspector.slice('Bearer '.length))).status).toBe(200);
      expect(await introspect(token, introspector)).toMatchObject({ status: 401, body: { error: 'invalid_token' } });

      const revoker = await tokenFor('svc-ops');
      expect((await revoke(revoker)).status).toBe(200);
      const notRevoked = await revoke(token, `Bearer ${revoker}`);
      expect(notRevoked.status).toBe(401);
      expect(((await notRevoked.json()) as Record<string, unknown>)['error']).toBe('invalid_token');
      expect((await introspect(token)).body['active']).toBe(true);
    });

    /**
     * `Authorization` values for a token: the scheme in any case after one or more spaces is a credential (RFC 9110 §11.1,
     * §11.4), and the whitespace around the value is not part of it; a tab between the two is no credential at all.
     */
    const spellings = (scheme: 'Bearer' | 'DPoP'): [string, (token: string) => string, boolean][] => [
      ...[scheme, scheme.toLowerCase(), scheme.toUpperCase(), `${scheme.slice(0, 1).toLowerCase()}${scheme.slice(1).toUpperCase()}`].map(
        (written): [string, (token: string) => string, boolean] => [written, (token) => `${written} ${token}`, true],
      ),
      [`${scheme} and three spaces`, (token) => `${scheme.toLowerCase()}   ${token}`, true],
      [`${scheme} with spaces around the value`, (token) => `  ${scheme} ${token}  `, true],
      [`${scheme} and a tab`, (token) => `${scheme}\t${token}`, false],
    ];
    const auditEvents = async (authorization: string, dpop?: DpopKey) => {
      const token = authorization.trim().split(/\s+/)[1] as string;
      const proof: Record<string, string> =
        dpop === undefined ? {} : { dpop: await dpop.proof('GET', `${broker.issuer}/v1/audit/events`, { ath: await athOf(token) }) };
      const response = await broker.request('/v1/audit/events?limit=1', { headers: { authorization, ...proof } });
      return { status: response.status, challenge: response.headers.get('www-authenticate'), body: (await response.json()) as Record<string, unknown> };
    };

    it.each(spellings('Bearer'))(
      'takes an operator token sent as %s exactly where that is a credential (RFC 9110 §11.1, §11.4)',
      async (_name, write, credential) => {
        const answered = await auditEvents(write(await tokenFor('svc-reader')));
        if (credential) expect(answered).toMatchObject({ status: 200, body: { events: expect.any(Array) } });
        else
          expect(answered).toEqual({
            status: 401,
            challenge: 'Bearer',
            body: { error: 'invalid_token', error_description: 'a Bearer access token is required', audit_event_id: expect.any(String) },
          });
      },
    );

    it.each(spellings('DPoP'))(
      'takes a DPoP-bound operator token sent as %s exactly where that is a credential (RFC 9110 §11.1, §11.4)',
      async (_name, write, credential) => {
        const key = await DpopKey.generate();
        const bound = await tokenFor('svc-reader', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) });
        const answered = await auditEvents(write(bound), key);
        if (credential) expect(answered).toMatchObject({ status: 200, body: { events: expect.any(Array) } });
        else
          expect(answered).toEqual({
            status: 401,
            challenge: 'Bearer',
            body: { error: 'invalid_token', error_description: 'a Bearer access token is required', audit_event_id: expect.any(String) },
          });
      },
    );

    it('refuses a revoked operator token however its scheme is spelt or spaced: /v1/*, /introspect and /revoke as operator', async () => {
      const key = await DpopKey.generate();
      const revoked = {
        Bearer: await tokenFor('svc-reader'),
        DPoP: await tokenFor('svc-reader', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) }),
      };
      for (const token of Object.values(revoked)) expect((await revoke(token, `Bearer ${await tokenFor('svc-ops')}`)).status).toBe(200);
      const live = await tokenFor('svc-a');
      for (const scheme of ['Bearer', 'DPoP'] as const) {
        for (const [name, write, credential] of spellings(scheme)) {
          const authorization = write(revoked[scheme]);
          const operatorApi = await auditEvents(authorization, scheme === 'DPoP' ? key : undefined);
          const introspection = await introspect(live, authorization);
          const answers = [
            operatorApi,
            introspection,
            await revoke(live, authorization).then(async (response) => ({ status: response.status, body: await response.json() })),
          ];
          // Read as a credential, it is the revoked one; not read as one, it is none, which no route takes either.
          const description = credential ? 'the access token was revoked' : 'a Bearer access token is required';
          for (const answer of answers)
            expect({ name, ...answer }).toMatchObject({ name, status: 401, body: { error: 'invalid_token', error_description: description } });
          // The challenge names the scheme the credential came under, as the route's own refusal would.
          const challenge = credential ? `${scheme} error="invalid_token"` : 'Bearer';
          expect([operatorApi.challenge, introspection.headers.get('www-authenticate')], name).toEqual([challenge, challenge]);
        }
      }
      expect((await introspect(live)).body).toMatchObject({ active: true });
    });

    it('the operator APIs read the revocation list only for a token their keys signed: a forged one is refused as not valid, revoked jti or not', async () => {
      const reader = await tokenFor('svc-reader');
      expect((await revoke(reader)).status).toBe(200);
      const [header, payload] = reader.split('.');
      // The revoked token's claims under another token's signature; and a fresh jti, never revoked, under the same.
      const signature = (await tokenFor('svc-reader')).split('.')[2];
      const forgedRevoked = `${header}.${payload}.${signature}`;
      const forgedFresh = `${header}.${base64url.encode(JSON.stringify({ ...decodeJwt(reader), jti: crypto.randomUUID() }))}.${signature}`;
      const asOperator = (token: string) => [
        broker.request('/v1/audit/events?limit=1', { headers: { authorization: `Bearer ${token}` } }),
        broker.request('/introspect', {
          method: 'POST',
          body: form(token),
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${token}` },
        }),
        revoke(reader, `Bearer ${token}`),
      ];
      const answers = async (token: string) =>
        Promise.all(
          asOperator(token).map(async (pending) => {
            const response = await pending;
            return { status: response.status, body: await response.json() };
          }),
        );
      const notValid = {
        status: 401,
        body: { error: 'invalid_token', error_description: 'the access token is not valid', audit_event_id: expect.any(String) },
      };
      // Whatever the list holds, and whether it can be read at all: the same answer as for any token that does not verify.
      expect(await answers(forgedRevoked)).toEqual([notValid, notValid, notValid]);
      const genuine = await tokenFor('svc-reader');
      await broker.setRevocationListDown(true);
      try {
        for (const forged of [forgedRevoked, forgedFresh]) expect(await answers(forged)).toEqual([notValid, notValid, notValid]);
        // A token the broker signed is still checked, and cannot be while the list is down.
        const unchecked = await broker.request('/v1/audit/events?limit=1', { headers: { authorization: `Bearer ${genuine}` } });
        expect([unchecked.status, ((await unchecked.json()) as Record<string, unknown>)['error']]).toEqual([503, 'temporarily_unavailable']);
      } finally {
        await broker.setRevocationListDown(false);
      }
    });

    it('revoking the token an /audit session was signed in with ends the session: its cookie is refused, and recorded', async () => {
      const reader = await tokenFor('svc-reader');
      const cookie = await pageCookie(broker, reader);
      const other = await pageCookie(broker, await tokenFor('svc-reader'));
      const page = (session: string) => broker.request('/audit', { headers: { cookie: session } });
      expect((await page(cookie)).status).toBe(200);
      expect((await revoke(reader)).status).toBe(200);
      const refused = await page(cookie);
      expect(refused.status).toBe(401);
      expect(await refused.text()).toContain('The session is over');
      const session = cookie.slice(cookie.indexOf('=') + 1);
      expect(await recordAbout(session, 'operator_token_invalid')).toMatchObject({
        subject: decodeJwt(reader).sub,
        detail: 'GET /audit: the access token the session was signed in with was revoked',
      });
      // A session signed in with another token goes on.
      expect((await page(other)).status).toBe(200);
    });

    it('introspection says an /audit session is inactive once the token it was signed in with is revoked, as the page does', async () => {
      const reader = await tokenFor('svc-reader');
      const cookie = await pageCookie(broker, reader);
      const session = cookie.slice(cookie.indexOf('=') + 1);
      expect((await introspect(session)).body).toMatchObject({ active: true, aud: `${broker.issuer}/audit` });
      expect((await revoke(reader)).status).toBe(200);
      expect((await introspect(session)).body).toEqual({ active: false });
      expect(await recordAbout(session, 'token_introspected')).toMatchObject({
        detail: 'inactive: token_revoked (the access token the session was signed in with was revoked)',
      });
    });

    it('records a /revoke of an /audit session whose sign-in token is revoked as already over, not as already revoked: it never was', async () => {
      const reader = await tokenFor('svc-reader');
      const session = (await pageCookie(broker, reader)).split('=')[1] as string;
      expect((await revoke(reader)).status).toBe(200);
      expect((await revoke(session)).status).toBe(200);
      expect(await recordAbout(session, 'token_revoked')).toMatchObject({
        detail: 'already over: the access token the session was signed in with was revoked; asked by its holder',
      });
    });

    const invalidTokens: [string, () => Promise<string>, Reason][] = [
      ['garbage', async () => 'garbage', 'token_malformed'],
      [
        'a token whose signature is another token’s',
        async () => {
          const [header, payload] = (await tokenFor('svc-a')).split('.');
          const other = (await tokenFor('svc-a')).split('.')[2];
          return `${header}.${payload}.${other}`;
        },
        'signature_invalid',
      ],
    ];
    it.each(invalidTokens)('answers 200 to revoking %s (RFC 7009 §2.2) and records why nothing was revoked', async (_name, make, reason) => {
      const token = await make();
      expect((await revoke(token)).status).toBe(200);
      expect(await recordAbout(token, reason)).toMatchObject({ decision: REASONS[reason].decision, detail: expect.stringMatching(/^not revoked/) });
    });

    describe('an operator revoking a token by its jti (POST /v1/tokens/revoke), known only from the audit log', () => {
      const revokeJti = async (body: unknown, authorization?: string) => {
        const response = await broker.request('/v1/tokens/revoke', {
          method: 'POST',
          body: typeof body === 'string' ? body : JSON.stringify(body),
          headers: { 'content-type': 'application/json', authorization: authorization ?? `Bearer ${await tokenFor('svc-ops')}` },
        });
        return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
      };
      const grantOf = async (token: string) => {
        const reader = await tokenFor('svc-reader');
        const response = await broker.request(`/v1/audit/events?jti=${decodeJwt(token).jti}&reason=granted`, {
          headers: { authorization: `Bearer ${reader}` },
        });
        return ((await response.json()) as { events: AuditEvent[] }).events.find((event) => event.issued?.jti === decodeJwt(token).jti);
      };

      it('ends it as /revoke does: introspection says inactive, verifyAccessToken refuses it, and the record names the token and the operator', async () => {
        const token = await tokenFor('svc-a');
        const { jti, exp } = decodeJwt(token) as { jti: string; exp: number };
        const answer = await revokeJti({ jti });
        expect(answer.status).toBe(200);
        expect(answer.headers.get('cache-control')).toBe('no-store');
        expect(answer.body).toEqual({ jti, status: 'revoked', exp, granted_in: (await grantOf(token))?.id, audit_event_id: expect.any(String) });
        expect((await introspect(token)).body).toEqual({ active: false });
        // A resource server that checks revocation refuses it.
        const verified = verifyAccessToken(token, await resourceServer(broker, await tokenFor('svc-rs')));
        await expect(verified).rejects.toMatchObject({ code: 'invalid_token', message: 'the token was revoked' });
        const reader = await tokenFor('svc-reader');
        const record = (await (
          await broker.request(`/v1/audit/events/${answer.body['audit_event_id']}`, { headers: { authorization: `Bearer ${reader}` } })
        ).json()) as AuditEvent;
        expect(record).toMatchObject({
          reason: 'token_revoked',
          decision: 'granted',
          subject: expect.stringContaining('svc-ops'),
          detail: `revoked keyway token ${jti} (granted in ${answer.body['granted_in']}) by operator ${decodeJwt(await tokenFor('svc-ops')).sub}, by its jti`,
          subject_token: { jti },
        });
        // An auditor's search by the token's jti finds its revocation beside its grant.
        const found = await broker.request(`/v1/audit/events?jti=${jti}&reason=token_revoked`, { headers: { authorization: `Bearer ${reader}` } });
        expect(((await found.json()) as { events: AuditEvent[] }).events.map((event) => event.id)).toEqual([answer.body['audit_event_id']]);
        expect(await revokeJti({ jti })).toMatchObject({ status: 200, body: { jti, status: 'already_revoked', exp } });
      });

      it('ends an /audit page session by its jti: its cookie is refused from then on', async () => {
        const cookie = await pageCookie(broker, await tokenFor('svc-reader'));
        const page = () => broker.request('/audit', { headers: { cookie } });
        expect((await page()).status).toBe(200);
        const session = cookie.slice(cookie.indexOf('=') + 1);
        expect((await revokeJti({ jti: decodeJwt(session).jti })).body).toMatchObject({ status: 'revoked' });
        expect((await page()).status).toBe(401);
      });

      it("revokes nothing for a jti no grant issued, however records name it: a caller's own subject token jti, or one made up", async () => {
        const chosen = `chosen-${crypto.randomUUID()}`;
        const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub: 'svc-a', iat: now(), exp: now() + 300, jti: chosen }, { alg: 'ES256' });
        const response = await broker.request('/token', {
          method: 'POST',
          body: exchangeForm(subject),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        const token = ((await response.json()) as Record<string, string>)['access_token'] as string;
        for (const jti of [chosen, crypto.randomUUID()]) {
          const answer = await revokeJti({ jti });
          expect(answer.status).toBe(404);
          expect(answer.body['error']).toBe('not_found');
          // A proxied call's credential has no grant record of its own: the answer says why it is not revoked.
          expect(answer.body['error_description']).toContain("a proxied call's credential, proxy.credential.jti, lives 60 s for its one call");
        }
        expect((await introspect(token)).body['active']).toBe(true);
        // The token that grant did issue is found by its own jti.
        expect((await revokeJti({ jti: decodeJwt(token).jti })).body).toMatchObject({ status: 'revoked' });
      });

      it('says a token already expired is, and revokes nothing', async () => {
        const token = await tokenFor('svc-a');
        const { jti, exp } = decodeJwt(token) as { jti: string; exp: number };
        // The broker's clock past exp and its tolerance (revokeJti's operator token is of that time).
        skew = (exp + 31 - now()) * 1000;
        try {
          expect(await revokeJti({ jti })).toMatchObject({ status: 200, body: { jti, status: 'expired', exp } });
        } finally {
          skew = 0;
        }
        expect((await introspect(token)).body['active']).toBe(true);
      });

      it('refuses a caller without tokens:revoke, and a body that is not {"jti": "…"}, and revokes nothing', async () => {
        const token = await tokenFor('svc-a');
        const jti = decodeJwt(token).jti;
        expect(await revokeJti({ jti }, `Bearer ${await tokenFor('svc-reader')}`)).toMatchObject({ status: 403, body: { error: 'insufficient_scope' } });
        expect(await revokeJti({ jti }, `Bearer ${await tokenFor('svc-a')}`)).toMatchObject({ status: 401 });
        for (const body of ['{', [jti], { jti: 5 }, { jti: '' }, { jti: 'x'.repeat(257) }, { jti, also: 'x' }, {}]) {
          expect(await revokeJti(body), JSON.stringify(body)).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        }
        expect((await introspect(token)).body['active']).toBe(true);
      });
    });

    describe('a request that holds no one token: invalid_request, recorded as malformed_request (or request_too_large, unsupported_media_type) with what was wrong, and no token', () => {
      const FORM = 'application/x-www-form-urlencoded';
      const MALFORMED = [400, 'malformed_request'] as const;
      /** What was sent (the token, when there is one, a keyway token of svc-a's), what the record's detail names, the status and reason. */
      const malformed: readonly [string, string, (token: string) => string, RegExp, 400 | 413 | 415, Reason][] = [
        ['no token parameter', FORM, () => 'token_type_hint=access_token', /the body holds no token parameter/, ...MALFORMED],
        ['an empty body', FORM, () => '', /the body holds no token parameter/, ...MALFORMED],
        ['two token parameters', FORM, (token) => `token=${token}&token=${token}`, /the body holds more than one token parameter/, ...MALFORMED],
        ['an empty token', FORM, () => 'token=&token_type_hint=access_token', /the token parameter is empty/, ...MALFORMED],
        [
          'a body that is not form-encoded',
          'application/json',
          (token) => JSON.stringify({ token }),
          /the body must be application\/x-www-form-urlencoded/,
          415,
          'unsupported_media_type',
        ],
        ['a body over 16 KiB', FORM, (token) => `token=${token}&pad=${'x'.repeat(16 * 1024)}`, /the body is larger than 16384 bytes/, 413, 'request_too_large'],
      ];
      const refusedAndRecorded = async (
        path: '/revoke' | '/introspect',
        [contentType, body, problem, status, reason]: [string, (token: string) => string, RegExp, 400 | 413 | 415, Reason],
        authorization?: string,
      ) => {
        const token = await tokenFor('svc-a');
        const requestId = `malformed-${crypto.randomUUID()}`;
        const response = await broker.request(path, {
          method: 'POST',
          body: body(token),
          headers: {
            'content-type': contentType,
            'x-request-id': requestId,
            'cf-connecting-ip': '127.0.0.1',
            ...(authorization === undefined ? {} : { authorization }),
          },
        });
        const answer = (await response.json()) as Record<string, unknown>;
        expect({ status: response.status, cacheControl: response.headers.get('cache-control') }).toEqual({ status, cacheControl: 'no-store' });
        expect(answer).toEqual({ error: 'invalid_request', error_description: expect.stringMatching(problem), audit_event_id: expect.any(String) });
        const record = await broker.auditEvent(answer['audit_event_id'] as string);
        expect(record).toMatchObject({
          decision: 'malformed',
          reason,
          detail: expect.stringMatching(new RegExp(`^POST ${path}: ${problem.source}`)),
          request: { id: requestId, client_ip: '127.0.0.1' },
        });
        expect(record).not.toHaveProperty('subject_token');
        expect(JSON.stringify(record)).not.toContain(token.split('.')[2]);
        return record;
      };

      it.each(malformed)('at /revoke from a stranger: %s', async (_what, ...request) => {
        const record = await refusedAndRecorded('/revoke', request);
        expect(record).not.toHaveProperty('subject');
      });

      it.each(malformed)('at /introspect from an operator, who is named: %s', async (_what, ...request) => {
        const record = await refusedAndRecorded('/introspect', request, `Bearer ${await tokenFor('svc-rs')}`);
        expect(record).toMatchObject({ issuer: broker.issuer, subject: expect.stringContaining('svc-rs') });
      });

      it('answers 503, never a 500, when the record cannot be written', async () => {
        await broker.tamper(
          "CREATE TRIGGER malformed_audit_down BEFORE INSERT ON audit_events WHEN NEW.reason = 'malformed_request' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
          [],
        );
        const answers: unknown[] = [];
        try {
          for (const authorization of [undefined, `Bearer ${await tokenFor('svc-rs')}`]) {
            const path = authorization === undefined ? '/revoke' : '/introspect';
            const response = await broker.request(path, {
              method: 'POST',
              body: '',
              headers: { 'content-type': FORM, ...(authorization === undefined ? {} : { authorization }) },
            });
            answers.push({ path, status: response.status, cacheControl: response.headers.get('cache-control'), body: await response.json() });
          }
        } finally {
          // Named on audit_events so the Workers harness runs it on every audit shard, as it ran the CREATE.
          await broker.tamper('DROP TRIGGER malformed_audit_down /* audit_events */', []);
        }
        const unavailable = { status: 503, cacheControl: 'no-store', body: { error: 'temporarily_unavailable', error_description: expect.any(String) } };
        expect(answers).toEqual([
          { path: '/revoke', ...unavailable },
          { path: '/introspect', ...unavailable },
        ]);
      });
    });

    it('introspects an active token with its claims, and a DPoP-bound one with its cnf', async () => {
      const token = await tokenFor('svc-a');
      const { status, headers, body } = await introspect(token);
      expect(status).toBe(200);
      expect(headers.get('cache-control')).toBe('no-store');
      expect(body).toMatchObject({
        active: true,
        token_type: 'Bearer',
        aud: 'https://a.example',
        scope: 'a:read',
        jti: decodeJwt(token).jti,
        iss: broker.issuer,
      });
      const key = await DpopKey.generate();
      const bound = await tokenFor('svc-a', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) });
      expect((await introspect(bound)).body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
      expect(await recordAbout(bound, 'token_introspected')).toMatchObject({
        decision: 'granted',
        detail: 'active',
        subject: expect.stringContaining('svc-rs'),
      });
    });

    it("answers active and token_type itself, over a policy's claims of those names", async () => {
      const key = await DpopKey.generate();
      const bound = await tokenFor('svc-look-alike', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) });
      expect(decodeJwt(bound)).toMatchObject({ active: 'false', token_type: 'Bearer' });
      expect((await introspect(bound)).body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
    });

    it('answers no claims, but 503, when the introspection cannot be recorded', async () => {
      const token = await tokenFor('svc-a');
      const rs = `Bearer ${await tokenFor('svc-rs')}`;
      await broker.tamper(
        "CREATE TRIGGER introspection_audit_down BEFORE INSERT ON audit_events WHEN NEW.reason = 'token_introspected' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
        [],
      );
      let unrecorded: Awaited<ReturnType<typeof introspect>>;
      try {
        unrecorded = await introspect(token, rs);
      } finally {
        // Named on audit_events so the Workers harness runs it on every audit shard, as it ran the CREATE.
        await broker.tamper('DROP TRIGGER introspection_audit_down /* audit_events */', []);
      }
      expect(unrecorded.status).toBe(503);
      expect(unrecorded.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    });

    it('introspects an expired token as inactive, and records why', async () => {
      const token = await tokenFor('svc-a');
      skew = 3600_000;
      try {
        // The introspecting service's own token is of the broker's time, which checks it.
        expect((await introspect(token, `Bearer ${await tokenFor('svc-rs')}`)).body).toEqual({ active: false });
      } finally {
        skew = 0;
      }
      expect(await recordAbout(token, 'token_introspected')).toMatchObject({ detail: expect.stringMatching(/^inactive: token_expired/) });
    });

    it("checks an operator's token on the broker's clock: one it says expired is refused, whatever the machine's says", async () => {
      const token = await tokenFor('svc-a');
      const rs = await tokenFor('svc-rs');
      skew = 3600_000;
      try {
        const refused = await introspect(token, `Bearer ${rs}`);
        expect(refused.status).toBe(401);
        expect(refused.body['error']).toBe('invalid_token');
      } finally {
        skew = 0;
      }
    });

    it('answers introspection only to callers with tokens:introspect', async () => {
      const token = await tokenFor('svc-a');
      expect((await introspect(token, 'Bearer not-a-token')).status).toBe(401);
      const unscoped = await introspect(token, `Bearer ${await tokenFor('svc-reader')}`);
      expect(unscoped).toMatchObject({ status: 403, body: { error: 'insufficient_scope' } });
      expect(unscoped.body).not.toHaveProperty('active');
    });

    it('sheds a flood of revocations with 429 before reading it, under the limits of /token', async () => {
      const limited = await start(
        { 'svc/app.yaml': service('svc-a', 'https://a.example', 'a:read') },
        { settings: { KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '3' }, ownState: true },
      );
      try {
        const send = () =>
          limited.request('/revoke', { method: 'POST', body: form('garbage'), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        const statuses = [];
        for (let i = 0; i < 4; i += 1) statuses.push((await send()).status);
        expect(statuses).toEqual([200, 200, 200, 429]);
        const shed = await send();
        expect(shed.status).toBe(429);
        expect(shed.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(((await shed.json()) as Record<string, unknown>)['error']).toBe('temporarily_unavailable');
      } finally {
        await limited.close();
      }
    });

    it("sheds introspection and an operator's revocation by the per-client bucket only: a flood of exchanges that spends the global one leaves them working", async () => {
      // The clock stands still: the global bucket, once spent, stays empty.
      const at = Date.now();
      const limited = await start(
        {
          'svc/app.yaml': service('svc-a', 'https://a.example', 'a:read'),
          'ops/introspector.yaml': service('svc-rs', HARNESS_ISSUER, 'tokens:introspect'),
          'ops/revoker.yaml': service('svc-ops', HARNESS_ISSUER, 'tokens:revoke'),
        },
        { settings: { KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '4' }, now: () => at, ownState: true },
      );
      try {
        const headers = { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '198.51.100.7' };
        const mint = async (sub: string) => {
          const subject = await ci.sign({ iss: ci.url, aud: limited.issuer, sub, iat: now(), exp: now() + 300, jti: crypto.randomUUID() }, { alg: 'ES256' });
          const response = await limited.request('/token', { method: 'POST', body: exchangeForm(subject), headers });
          expect(response.status).toBe(200);
          return ((await response.json()) as Record<string, unknown>)['access_token'] as string;
        };
        const [token, rs, ops] = [await mint('svc-a'), await mint('svc-rs'), await mint('svc-ops')];
        // A flood of exchanges spends what is left of the global bucket (the per-client one, at its default, holds plenty).
        const flood = [];
        for (let i = 0; i < 3; i += 1) flood.push((await limited.request('/token', { method: 'POST', body: exchangeForm('garbage'), headers })).status);
        expect(flood).toEqual([400, 429, 429]);

        // The resource server's revocation check still works…
        const introspected = await limited.request('/introspect', {
          method: 'POST',
          body: form(token),
          headers: { ...headers, authorization: `Bearer ${rs}` },
        });
        expect({ status: introspected.status, body: await introspected.json() }).toMatchObject({ status: 200, body: { active: true } });
        const verified = verifyAccessToken(
          token,
          await resourceServer(limited, rs, {
            fetch: (input, init) =>
              limited.request(new URL(String(input)).pathname, {
                ...init,
                headers: { ...(init?.headers as Record<string, string>), 'cf-connecting-ip': '198.51.100.7' },
              }),
          }),
        );
        await expect(verified).resolves.toMatchObject({ sub: expect.any(String) });
        // …a revocation by its holder alone is still shed like an exchange…
        expect((await limited.request('/revoke', { method: 'POST', body: form(token), headers })).status).toBe(429);
        // …and an operator's is not.
        expect((await limited.request('/revoke', { method: 'POST', body: form(token), headers: { ...headers, authorization: `Bearer ${ops}` } })).status).toBe(
          200,
        );
        const after = await limited.request('/introspect', { method: 'POST', body: form(token), headers: { ...headers, authorization: `Bearer ${rs}` } });
        expect(await after.json()).toEqual({ active: false });
      } finally {
        await limited.close();
      }
    });

    it("sheds /introspect and an operator's /revoke before it reads the revocation list for the token in Authorization", async () => {
      const at = Date.now();
      const limited = await start(
        { 'svc/app.yaml': service('svc-a', 'https://a.example', 'a:read') },
        { settings: { KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '2' }, now: () => at, ownState: true },
      );
      try {
        const headers = { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '198.51.100.8' };
        const subject = await ci.sign(
          { iss: ci.url, aud: limited.issuer, sub: 'svc-a', iat: now(), exp: now() + 300, jti: crypto.randomUUID() },
          { alg: 'ES256' },
        );
        const issued = await limited.request('/token', { method: 'POST', body: exchangeForm(subject), headers });
        const token = ((await issued.json()) as Record<string, unknown>)['access_token'] as string;
        // The client's second and last request: its holder revokes it.
        expect((await limited.request('/revoke', { method: 'POST', body: form(token), headers })).status).toBe(200);
        // The revoked token itself: were the list read first, it would be answered 401 "revoked", one read each.
        for (const path of ['/introspect', '/revoke']) {
          const shed = await limited.request(path, { method: 'POST', body: form('x'), headers: { ...headers, authorization: `Bearer ${token}` } });
          expect({ path, status: shed.status, body: await shed.json() }).toMatchObject({ path, status: 429, body: { error: 'temporarily_unavailable' } });
        }
      } finally {
        await limited.close();
      }
    });

    it('lets verifyAccessToken see a revocation through introspection, after at most its cache delay', async () => {
      const token = await tokenFor('svc-a');
      const rs = await tokenFor('svc-rs');
      const cached = await resourceServer(broker, rs, { cacheSeconds: 30 });
      const uncached = await resourceServer(broker, rs);
      await expect(verifyAccessToken(token, cached)).resolves.toMatchObject({ sub: expect.any(String) });
      expect((await revoke(token)).status).toBe(200);
      // Within the delay the cached "active" answer stands (documented); past it, the revocation is seen.
      await expect(verifyAccessToken(token, cached)).resolves.toMatchObject({ sub: expect.any(String) });
      const refused = verifyAccessToken(token, uncached);
      await expect(refused).rejects.toBeInstanceOf(AccessTokenError);
      await expect(refused).rejects.toMatchObject({ code: 'invalid_token', message: 'the token was revoked' });
    });

    it("caches the broker's active answer per token: another token's answer never covers a revoked one", async () => {
      const [live, revoked, rs] = await Promise.all([tokenFor('svc-a'), tokenFor('svc-a'), tokenFor('svc-rs')]);
      const options = await resourceServer(broker, rs, { cacheSeconds: 30 });
      expect((await revoke(revoked)).status).toBe(200);
      await expect(verifyAccessToken(live, options)).resolves.toMatchObject({ sub: expect.any(String) });
      // A "revoked" answer is never cached as if it were "active": asked again within the delay, the token stays refused.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        await expect(verifyAccessToken(revoked, options)).rejects.toMatchObject({ code: 'invalid_token', message: 'the token was revoked' });
      }
    });

    it('claims a DPoP proof before asking the broker about revocation: a replayed proof costs the broker nothing', async () => {
      const key = await DpopKey.generate();
      const token = await tokenFor('svc-a', {}, { dpop: await key.proof('POST', `${broker.issuer}/token`) });
      const rs = await tokenFor('svc-rs');
      let asked = 0;
      const options = {
        ...(await resourceServer(broker, rs, {
          fetch: (input, init) => {
            asked += 1;
            return broker.request(new URL(String(input)).pathname, init);
          },
        })),
        dpopReplay: new MemoryDpopReplayStore(),
      };
      const presented = { proof: await key.proof('GET', 'https://a.example/x', { ath: await athOf(token) }), method: 'GET', url: 'https://a.example/x' };
      await expect(verifyAccessToken(token, options, presented)).resolves.toMatchObject({ sub: expect.any(String) });
      expect(asked).toBe(1);
      await expect(verifyAccessToken(token, options, presented)).rejects.toMatchObject({ code: 'invalid_dpop_proof' });
      expect(asked).toBe(1);
    });

    it('fails closed when the broker cannot be asked', async () => {
      const token = await tokenFor('svc-a');
      const refused = verifyAccessToken(token, await resourceServer(broker, 'not-a-token'));
      await expect(refused).rejects.toMatchObject({ code: 'invalid_token', message: expect.stringMatching(/could not be checked: the broker answered 401/) });
      // An answer that is not `active: true` (here a 200 from another endpoint of the broker's) refuses the token as well.
      const rs = await tokenFor('svc-rs');
      const unanswered = verifyAccessToken(
        token,
        await resourceServer(broker, rs, { fetch: (_input, init) => broker.request('/.well-known/jwks.json', { ...init, method: 'GET', body: null }) }),
      );
      await expect(unanswered).rejects.toMatchObject({ code: 'invalid_token', message: 'the token was revoked' });
    });
  });
}
