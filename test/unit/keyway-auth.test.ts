import { Hono } from 'hono';
import { createLocalJWKSet, SignJWT } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { keywayAuth, type KeywayAuthVariables } from '../../src/http/middleware/keyway-auth.ts';
import { verifyAccessToken } from '../../src/core/mint/verify-access-token.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';

const ISSUER = 'https://keyway.test';

describe('keywayAuth', () => {
  let ring: KeyRing;
  let otherRing: KeyRing;
  let app: Hono<{ Variables: KeywayAuthVariables }>;

  const mint = async (overrides: Partial<IssuedGrant> = {}, options: { ring?: KeyRing; issuer?: string; now?: number } = {}) =>
    (
      await mintAccessToken({
        issuer: options.issuer ?? ISSUER,
        key: (options.ring ?? ring).signing,
        grant: {
          policy: { id: 'auditors' } as Policy,
          audiences: [ISSUER],
          scopes: ['audit:read'],
          ttlSeconds: 300,
          subject: 'alice',
          claims: {},
          ...overrides,
        },
        source: { iss: 'https://accounts.google.com', sub: '1234' },
        now: options.now ?? Date.now(),
      })
    ).token;

  const call = (token?: string) => app.request('/events', token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    otherRing = await KeyRing.from([await generateSigningKey(Date.now())]);
    app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.use('/events', keywayAuth({ issuer: ISSUER, audience: ISSUER, scopes: ['audit:read'], keys: createLocalJWKSet(ring.jwks) }));
    app.get('/events', (c) => c.json({ sub: c.get('keywayToken').sub }));
  });

  it('lets a valid token through with its claims', async () => {
    const response = await call(await mint());
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ sub: 'alice' });
  });

  it('asks for a token when there is none (401, WWW-Authenticate: Bearer)', async () => {
    const response = await call();
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(await app.request('/events', { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).toHaveProperty('status', 401);
  });

  it.each([
    ['another audience', () => mint({ audiences: ['https://other.example'] })],
    ['another issuer', () => mint({}, { issuer: 'https://evil.example' })],
    ['a key the broker does not publish', () => mint({}, { ring: otherRing })],
    ['an expired token', () => mint({ ttlSeconds: 60 }, { now: Date.now() - 600_000 })],
    ['garbage', async () => 'a.b.c'],
  ])('refuses %s with 401 invalid_token', async (_name, token) => {
    const response = await call(await token());
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(await response.json()).toMatchObject({ error: 'invalid_token' });
  });

  it('takes a token up to 29 s past its exp, and refuses it from 30 s past: the documented 30 s clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000) * 1000;
    vi.useFakeTimers({ toFake: ['Date'], now });
    try {
      const expiredFor = (seconds: number) => mint({ ttlSeconds: 60 }, { now: now - (60 + seconds) * 1000 });
      expect((await call(await expiredFor(29))).status).toBe(200);
      expect((await call(await expiredFor(30))).status).toBe(401);
    } finally {
      vi.useRealTimers();
    }
  });

  it("verifyAccessToken judges exp once the keys answered: a slow key lookup (a JWKS fetched) does not stretch a token's life", async () => {
    const minted = Math.floor(Date.now() / 1000) * 1000;
    const token = await mint({ ttlSeconds: 60 }, { now: minted });
    const local = createLocalJWKSet(ring.jwks);
    // 29 s past exp when verification begins (inside the tolerance), 30 s past by the time the keys answered.
    let clock = minted + 89_000;
    const verify = () =>
      verifyAccessToken(token, {
        issuer: ISSUER,
        audience: ISSUER,
        now: () => clock,
        keys: async (header, jws) => {
          clock += 1000;
          return local(header, jws);
        },
      });
    await expect(verify()).rejects.toMatchObject({ code: 'invalid_token', message: 'the token expired' });
    clock = minted + 88_000;
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
  });

  it("verifyAccessToken reuses the broker's active answer for 30 s by default, not at 30 s; with cacheSeconds 0 it asks every time", async () => {
    const now = Date.now();
    let clock = now;
    let asked = 0;
    const revocation = {
      credential: () => 'introspector',
      fetch: async () => {
        asked += 1;
        return Response.json({ active: true });
      },
    };
    const verify = (token: string, cache: { cacheSeconds?: number } = {}) =>
      verifyAccessToken(token, {
        issuer: ISSUER,
        audience: ISSUER,
        keys: createLocalJWKSet(ring.jwks),
        revocation: { ...revocation, ...cache },
        now: () => clock,
      });
    const token = await mint();
    await verify(token);
    clock = now + 29_999;
    await verify(token);
    expect(asked).toBe(1);
    clock = now + 30_000;
    await verify(token);
    expect(asked).toBe(2);
    // Twice at one instant.
    const uncached = await mint();
    await verify(uncached, { cacheSeconds: 0 });
    await verify(uncached, { cacheSeconds: 0 });
    expect(asked).toBe(4);
  });

  it('refuses a JWT that is not typed at+jwt (an ID token signed by the same key)', async () => {
    const idToken = await new SignJWT({ client_id: 'x', scope: 'audit:read', jti: 'j' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: ring.signing.kid })
      .setIssuer(ISSUER)
      .setAudience(ISSUER)
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(ring.signing.key);
    expect((await call(idToken)).status).toBe(401);
  });

  it('refuses a token without the scope with 403 insufficient_scope', async () => {
    const response = await call(await mint({ scopes: ['deploy:write'] }));
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="audit:read"');
  });

  it('compares scopes whole: a scope that only contains the one required, or is contained in one granted, is another scope', async () => {
    for (const scopes of [['audit:read:own'], ['xaudit:read'], ['audit:reader', 'deploy:write'], ['audit']]) {
      expect((await call(await mint({ scopes }))).status, scopes.join(' ')).toBe(403);
    }
    expect((await call(await mint({ scopes: ['audit:reader', 'audit:read'] }))).status).toBe(200);
  });
});
