import { Hono } from 'hono';
import { base64url, createLocalJWKSet, decodeJwt, SignJWT, type JSONWebKeySet, type JWTHeaderParameters } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestIssuer } from '../support/test-issuer.ts';
import { athOf, DpopKey, type ProofOptions } from '../support/dpop-key.ts';
import { keywayAuth, type KeywayAuthVariables } from '../../src/http/middleware/keyway-auth.ts';
import { dpopFetch, generateDpopKey } from '../../src/core/dpop/dpop-fetch.ts';
import { exchangeForm, expectRefusal, freshIssuer, type BrokerHarness, type StartBroker, type TokenResponse } from './exchange-suite.ts';

/** 32 bytes, base64url: the nonce key of the broker that demands nonces. */
const NONCE_KEY = base64url.encode(new Uint8Array(32).fill(7));

/** The key's public JWK with its coordinates as one-element arrays: not a JWK (RFC 7517 members are strings), though WebCrypto imports it. */
const arrayCoordinates = (key: DpopKey) => ({ kty: 'EC', crv: 'P-256', x: [key.publicJwk.x], y: [key.publicJwk.y] }) as never;

/** DPoP (RFC 9449) at `POST /token`, on Node and inside workerd. */
export function dpopSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`DPoP at the token endpoint on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let ci: TestIssuer;
    let key: DpopKey;
    const now = () => Math.floor(Date.now() / 1000);
    const subjectToken = (sub: string, claims: Record<string, unknown> = {}) =>
      ci.sign({ iss: ci.url, aud: broker.issuer, sub, iat: now(), exp: now() + 300, jti: crypto.randomUUID(), ...claims }, { alg: 'ES256' });
    const endpoint = () => `${broker.issuer}/token`;

    const post = async (on: BrokerHarness, form: URLSearchParams, proof?: string): Promise<TokenResponse> => {
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) };
      const response = await on.request('/token', { method: 'POST', body: form, headers });
      return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
    };
    const withProof = async (sub: string, options: ProofOptions = {}) =>
      post(broker, exchangeForm(await subjectToken(sub)), await key.proof('POST', endpoint(), options));
    const invalidProof = { error: 'invalid_dpop_proof', reason: 'dpop_proof_invalid' } as const;

    beforeAll(async () => {
      ci = freshIssuer(issuerBase(), 'dpop-ci');
      await ci.rotate({ alg: 'ES256' });
      key = await DpopKey.generate();
      broker = await start({
        'dpop/optional.yaml': `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-a }\ngrant: { audience: https://a.example }\n`,
        'dpop/required.yaml':
          `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-bound }\n` +
          'grant: { audience: https://bound.example, require_dpop: true }\n',
      });
    });
    afterAll(() => broker.close());

    it('binds the issued token to the proof key: cnf.jkt, token_type DPoP, and the thumbprint in the audit record', async () => {
      const result = await withProof('svc-bound');
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.body['token_type']).toBe('DPoP');
      expect(decodeJwt(result.body['access_token'] as string)['cnf']).toEqual({ jkt: key.jkt });
      expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.issued?.cnf_jkt).toBe(key.jkt);
    });

    it.each(['PS256', 'Ed25519'] as const)('accepts a proof made with a %s key', async (alg) => {
      const other = await DpopKey.generate(alg);
      const result = await post(broker, exchangeForm(await subjectToken('svc-bound')), await other.proof('POST', endpoint()));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(decodeJwt(result.body['access_token'] as string)['cnf']).toEqual({ jkt: other.jkt });
    });

    it('issues a Bearer token without cnf when no proof comes and the policy does not require one', async () => {
      const result = await post(broker, exchangeForm(await subjectToken('svc-a')));
      expect(result.status).toBe(200);
      expect(result.body['token_type']).toBe('Bearer');
      expect(decodeJwt(result.body['access_token'] as string)).not.toHaveProperty('cnf');
    });

    it('refuses a request without a proof when the policy has require_dpop', async () => {
      await expectRefusal(broker, await post(broker, exchangeForm(await subjectToken('svc-bound'))), { error: 'invalid_dpop_proof', reason: 'dpop_required' });
    });

    it('refuses a proof used a second time, even with a fresh subject token', async () => {
      const proof = await key.proof('POST', endpoint());
      expect((await post(broker, exchangeForm(await subjectToken('svc-a')), proof)).status).toBe(200);
      const again = await post(broker, exchangeForm(await subjectToken('svc-a')), proof);
      const event = await expectRefusal(broker, again, { error: 'invalid_dpop_proof', reason: 'dpop_proof_replayed' });
      expect(event.detail).toContain('already used');
    });

    it('remembers a proof for as long as it is accepted: its replay 65 s after its iat is refused', async () => {
      const clock = { now: Date.now() };
      const held = await start(
        {
          'dpop/optional.yaml': `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-a }\ngrant: { audience: https://a.example }\n`,
        },
        { now: () => clock.now, ownState: true },
      );
      try {
        const iat = Math.floor(clock.now / 1000);
        const proof = await key.proof('POST', `${held.issuer}/token`, { iat });
        const fresh = async () => exchangeForm(await subjectToken('svc-a', { aud: held.issuer }));
        expect((await post(held, await fresh(), proof)).status).toBe(200);
        clock.now = (iat + 65) * 1000;
        await expectRefusal(held, await post(held, await fresh(), proof), { error: 'invalid_dpop_proof', reason: 'dpop_proof_replayed' });
      } finally {
        await held.close();
      }
    });

    it('grants exactly one of several concurrent requests with one proof', async () => {
      const proof = await key.proof('POST', endpoint());
      const results = await Promise.all(Array.from({ length: 4 }, async () => post(broker, exchangeForm(await subjectToken('svc-a')), proof)));
      expect(results.filter((result) => result.status === 200)).toHaveLength(1);
      for (const loser of results.filter((result) => result.status !== 200)) {
        await expectRefusal(broker, loser, { error: 'invalid_dpop_proof', reason: 'dpop_proof_replayed' });
      }
    });

    it('ignores the query of htu, as RFC 9449 says, and normalizes case and the default port', async () => {
      const url = new URL(endpoint());
      const shouted = `${url.protocol}//${url.host.toUpperCase()}${url.port === '' ? `:${url.protocol === 'https:' ? 443 : 80}` : ''}${url.pathname}?x=1`;
      const result = await post(broker, exchangeForm(await subjectToken('svc-bound')), await key.proof('POST', shouted));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
    });

    describe('refuses every malformed or mismatched proof, with no token', () => {
      const cases: Record<string, () => Promise<string>> = {
        'another method (htm GET)': () => key.proof('GET', endpoint()),
        // Methods are case-sensitive (RFC 9110 §9.1); only the scheme and host of htu are not.
        'the method in lower case (htm post)': () => key.proof('post', endpoint()),
        'the path of htu in another case': () => key.proof('POST', `${broker.issuer}/TOKEN`),
        'another URL (htu)': () => key.proof('POST', `${broker.issuer}/v1/audit`),
        'another origin (htu)': () => key.proof('POST', 'https://evil.example/token'),
        'htu that is not a URL': () => key.proof('POST', 'token'),
        'a stale iat': () => key.proof('POST', endpoint(), { iat: now() - 120 }),
        'an iat in the future': () => key.proof('POST', endpoint(), { iat: now() + 120 }),
        'typ JWT': () => key.proof('POST', endpoint(), { typ: 'JWT' }),
        'no jti': () => key.proof('POST', endpoint(), { claims: { jti: undefined } }),
        'a jti that is not a string': () => key.proof('POST', endpoint(), { claims: { jti: 42 } }),
        'an overlong jti': () => key.proof('POST', endpoint(), { jti: 'j'.repeat(300) }),
        'the private key in its jwk': () => key.proof('POST', endpoint(), { jwk: key.privateJwk }),
        'the jwk of another key': async () => key.proof('POST', endpoint(), { jwk: (await DpopKey.generate()).publicJwk }),
        'no jwk': () => key.proof('POST', endpoint(), { header: { jwk: undefined } }),
        'an HMAC signature with the secret in the header': () =>
          new SignJWT({ htm: 'POST', htu: endpoint(), iat: now(), jti: crypto.randomUUID() })
            // jose's types forbid a secret in a header; an attacker's client does not.
            .setProtectedHeader({
              alg: 'HS256',
              typ: 'dpop+jwt',
              jwk: { kty: 'oct', k: base64url.encode('secret-secret-secret-secret-32by') },
            } as JWTHeaderParameters)
            .sign(new TextEncoder().encode('secret-secret-secret-secret-32by')),
        'alg none': async () =>
          `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: key.publicJwk }))}.${base64url.encode(
            JSON.stringify({ htm: 'POST', htu: endpoint(), iat: now(), jti: crypto.randomUUID() }),
          )}.`,
        'two proofs in one header': async () => `${await key.proof('POST', endpoint())}, ${await key.proof('POST', endpoint())}`,
        garbage: async () => 'not-a-proof',
        'an oversized proof': () => key.proof('POST', endpoint(), { claims: { pad: 'x'.repeat(9000) } }),
        // Keys WebCrypto will not import (a DOMException, not a JOSEError): a bad proof, never a 500.
        'an EC point not on the curve': async () => unimportable({ kty: 'EC', crv: 'P-256', x: zeros(32), y: zeros(32) }, 'ES256'),
        'a jwk whose key_ops say sign': async () => unimportable({ ...key.publicJwk, key_ops: ['sign'] }, 'ES256'),
        'a truncated Ed25519 key': async () => unimportable({ kty: 'OKP', crv: 'Ed25519', x: 'AA' }, 'Ed25519'),
        // WebCrypto imports a key whose members are one-element arrays (it reads each as its string); its thumbprint cannot be taken.
        'a jwk whose x and y are arrays, signed by its key': () => key.proof('POST', endpoint(), { jwk: arrayCoordinates(key) }),
        'a jwk whose kty is not a string': () => key.proof('POST', endpoint(), { jwk: { ...key.publicJwk, kty: ['EC'] } as never }),
      };
      const zeros = (length: number) => base64url.encode(new Uint8Array(length));
      const unimportable = (jwk: Record<string, unknown>, alg: string) =>
        [
          base64url.encode(JSON.stringify({ alg, typ: 'dpop+jwt', jwk })),
          base64url.encode(JSON.stringify({ htm: 'POST', htu: endpoint(), iat: now(), jti: crypto.randomUUID() })),
          zeros(64),
        ].join('.');
      it.each(Object.keys(cases))('%s', async (name) => {
        const proof = await (cases[name] as () => Promise<string>)();
        await expectRefusal(broker, await post(broker, exchangeForm(await subjectToken('svc-bound')), proof), invalidProof);
      });

      // Checking a signature costs in proportion to the RSA key's exponent and modulus, which the proof's sender picks: a
      // 3072-bit exponent makes one check about a hundred times dearer than 65537 does, before anything else is known.
      const rsaProof = async (modulusLength: number, publicExponent: Uint8Array) => {
        const pair = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent, hash: 'SHA-256' }, true, [
          'sign',
          'verify',
        ])) as CryptoKeyPair;
        const { kty, n, e } = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
        return new SignJWT({ htm: 'POST', htu: endpoint(), iat: now(), jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'RS256', typ: 'dpop+jwt', jwk: { kty, n, e } as JWTHeaderParameters['jwk'] })
          .sign(pair.privateKey);
      };
      it.each([
        ['a public exponent other than 65537 (3)', 2048, new Uint8Array([3]), /public exponent/],
        ['a modulus over 4096 bits', 4224, new Uint8Array([1, 0, 1]), /4096 bits/],
      ])('an RSA key with %s, signed by that key', { timeout: 60_000 }, async (_name, bits, exponent, why) => {
        const result = await post(broker, exchangeForm(await subjectToken('svc-bound')), await rsaProof(bits, exponent));
        await expectRefusal(broker, result, invalidProof);
        expect(result.body['error_description']).toMatch(why);
      });
    });

    describe('a subject token that is itself bound (cnf)', () => {
      it('keeps the binding when the request proves possession of that key', async () => {
        const result = await post(broker, exchangeForm(await subjectToken('svc-a', { cnf: { jkt: key.jkt } })), await key.proof('POST', endpoint()));
        expect(result.status, JSON.stringify(result.body)).toBe(200);
        expect(result.body['token_type']).toBe('DPoP');
        expect(decodeJwt(result.body['access_token'] as string)['cnf']).toEqual({ jkt: key.jkt });
      });

      it('is refused without a proof: it never becomes a bearer token', async () => {
        const result = await post(broker, exchangeForm(await subjectToken('svc-a', { cnf: { jkt: key.jkt } })));
        await expectRefusal(broker, result, { error: 'invalid_dpop_proof', reason: 'subject_token_bound' });
      });

      it('is refused with a proof of another key', async () => {
        const other = await DpopKey.generate();
        const result = await post(broker, exchangeForm(await subjectToken('svc-a', { cnf: { jkt: key.jkt } })), await other.proof('POST', endpoint()));
        await expectRefusal(broker, result, { error: 'invalid_dpop_proof', reason: 'subject_token_bound' });
      });

      it.each([
        ['mTLS x5t#S256', false],
        ["mTLS x5t#S256, beside the proof key's jkt", true],
      ])('is refused when bound by a method keyway cannot check (%s)', async (_name, withJkt) => {
        const cnf = { ...(withJkt ? { jkt: key.jkt } : {}), 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' };
        const result = await post(broker, exchangeForm(await subjectToken('svc-a', { cnf })), await key.proof('POST', endpoint()));
        await expectRefusal(broker, result, { error: 'invalid_dpop_proof', reason: 'subject_token_bound' });
      });
      it('is refused when its cnf is null: a binding keyway cannot read is not dropped', async () => {
        const result = await post(broker, exchangeForm(await subjectToken('svc-a', { cnf: null })));
        await expectRefusal(broker, result, { error: 'invalid_dpop_proof', reason: 'subject_token_bound' });
      });
    });

    it('issues a token a service behind keywayAuth accepts with a proof of its key, and refuses with another key or as Bearer', async () => {
      const jwks = createLocalJWKSet((await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet);
      const service = new Hono<{ Variables: KeywayAuthVariables }>();
      service.get('/artifacts', keywayAuth({ issuer: broker.issuer, audience: 'https://bound.example', keys: jwks }), (c) => c.json(c.get('keywayToken')));
      const token = (await withProof('svc-bound')).body['access_token'] as string;
      const use = async (by: DpopKey, scheme = 'DPoP', options: ProofOptions = {}) =>
        service.request('https://bound.example/artifacts', {
          headers: {
            authorization: `${scheme} ${token}`,
            dpop: await by.proof('GET', 'https://bound.example/artifacts', { ath: await athOf(token), ...options }),
          },
        });
      expect((await use(key)).status).toBe(200);
      expect((await use(await DpopKey.generate())).status).toBe(401);
      expect((await use(key, 'Bearer')).status).toBe(401);
      // The right key, signing, but its jwk not a JWK: an invalid proof, not a fault of the service.
      const malformed = await use(key, 'DPoP', { jwk: arrayCoordinates(key) });
      expect({ status: malformed.status, body: await malformed.json() }).toMatchObject({ status: 401, body: { error: 'invalid_dpop_proof' } });
    });

    it('advertises the proof algorithms it accepts in its metadata', async () => {
      const metadata = (await (await broker.request('/.well-known/oauth-authorization-server')).json()) as Record<string, unknown>;
      // As docs/dpop-and-revocation.md lists them: asymmetric only, never none or HMAC.
      expect(metadata['dpop_signing_alg_values_supported']).toEqual(['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256']);
    });

    describe('with server nonces (KEYWAY_DPOP_NONCE_KEY)', () => {
      let strict: BrokerHarness;
      beforeAll(async () => {
        strict = await start(
          {
            'dpop/optional.yaml': `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-a }\ngrant: { audience: https://a.example }\n`,
          },
          { settings: { KEYWAY_DPOP_NONCE_KEY: NONCE_KEY }, ownState: true },
        );
      });
      afterAll(() => strict.close());
      const strictProof = (options: ProofOptions = {}) => key.proof('POST', `${strict.issuer}/token`, options);

      it('answers use_dpop_nonce with a DPoP-Nonce header to a proof without one, and grants the retry that carries it', async () => {
        const first = await post(strict, exchangeForm(await subjectToken('svc-a')), await strictProof());
        await expectRefusal(strict, first, { error: 'use_dpop_nonce', reason: 'dpop_nonce_required' });
        const nonce = first.headers.get('dpop-nonce');
        expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
        const retry = await post(strict, exchangeForm(await subjectToken('svc-a')), await strictProof({ nonce: nonce as string }));
        expect(retry.status, JSON.stringify(retry.body)).toBe(200);
        expect(retry.body['token_type']).toBe('DPoP');
      });

      it('is answered by dpopFetch, which retries once with the nonce it was handed', async () => {
        const call = dpopFetch(await generateDpopKey(), {
          fetch: ((url: RequestInfo | URL, init?: RequestInit) => strict.request(new URL(String(url)).pathname, init)) as typeof fetch,
        });
        const response = await call(`${strict.issuer}/token`, { method: 'POST', body: exchangeForm(await subjectToken('svc-a')) });
        const body = (await response.json()) as Record<string, unknown>;
        expect(response.status, JSON.stringify(body)).toBe(200);
        expect(body['token_type']).toBe('DPoP');
      });

      it('refuses a nonce it did not hand out', async () => {
        const result = await post(strict, exchangeForm(await subjectToken('svc-a')), await strictProof({ nonce: base64url.encode(new Uint8Array(32)) }));
        await expectRefusal(strict, result, { error: 'use_dpop_nonce', reason: 'dpop_nonce_required' });
      });

      it('still refuses an invalid proof as invalid, not with a nonce request', async () => {
        const result = await post(strict, exchangeForm(await subjectToken('svc-a')), await strictProof({ typ: 'JWT' }));
        await expectRefusal(strict, result, invalidProof);
      });
    });
  });
}
