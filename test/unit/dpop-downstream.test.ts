import { Hono } from 'hono';
import { createLocalJWKSet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { keywayAuth, type KeywayAuthOptions, type KeywayAuthVariables } from '../../src/http/middleware/keyway-auth.ts';
import { AccessTokenError, verifyAccessToken } from '../../src/core/mint/verify-access-token.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import type { DpopReplayStore } from '../../src/core/dpop/dpop-replay.ts';
import { athOf, DpopKey, type ProofOptions } from '../support/dpop-key.ts';

const ISSUER = 'https://keyway.test';
const SERVICE = 'https://deploy.acme.dev';

describe('DPoP-bound tokens downstream (verifyAccessToken, keywayAuth)', () => {
  let ring: KeyRing;
  let key: DpopKey;
  let options: KeywayAuthOptions;
  let app: Hono<{ Variables: KeywayAuthVariables }>;

  const mint = async (jkt: string | undefined) =>
    (
      await mintAccessToken({
        issuer: ISSUER,
        key: ring.signing,
        grant: { policy: { id: 'deploy' } as Policy, audiences: [SERVICE], scopes: ['deploy:write'], ttlSeconds: 300, subject: 'ci', claims: {} },
        source: { iss: 'https://ci.example', sub: 'job' },
        now: Date.now(),
        ...(jkt === undefined ? {} : { confirmation: { jkt } }),
      })
    ).token;
  const proofFor = async (token: string, options: ProofOptions & { url?: string; method?: string; by?: DpopKey } = {}) =>
    (options.by ?? key).proof(options.method ?? 'POST', options.url ?? `${SERVICE}/deploy`, { ath: await athOf(token), ...options });
  const call = (token: string, proof?: string, scheme = 'DPoP') =>
    app.request(`${SERVICE}/deploy?env=prod`, {
      method: 'POST',
      headers: { authorization: `${scheme} ${token}`, ...(proof === undefined ? {} : { dpop: proof }) },
    });
  const expectRefused = async (response: Response, error: string, scheme = 'DPoP') => {
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: string }).error).toBe(error);
    // RFC 9449 §7.1: a DPoP challenge names the proof algorithms the service takes.
    const algs = scheme === 'DPoP' ? ', algs="ES256 ES384 EdDSA Ed25519 PS256 RS256"' : '';
    expect(response.headers.get('www-authenticate')).toBe(`${scheme} error="${error}"${algs}`);
  };

  beforeAll(async () => {
    ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    key = await DpopKey.generate();
    options = { issuer: ISSUER, audience: SERVICE, scopes: ['deploy:write'], keys: createLocalJWKSet(ring.jwks) };
    app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.post('/deploy', keywayAuth(options), (c) => c.json({ sub: c.get('keywayToken').sub }));
  });

  it('lets a bound token through with a proof of this request, this token and its key', async () => {
    const token = await mint(key.jkt);
    const response = await call(token, await proofFor(token));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ sub: 'ci' });
  });

  it('refuses a bound token sent as a Bearer token', async () => {
    const token = await mint(key.jkt);
    await expectRefused(await call(token, await proofFor(token), 'Bearer'), 'invalid_token', 'Bearer');
    await expect(verifyAccessToken(token, options)).rejects.toMatchObject({ code: 'invalid_token', message: expect.stringMatching(/bound/) });
  });

  it('refuses a proof made with another key', async () => {
    const token = await mint(key.jkt);
    await expectRefused(await call(token, await proofFor(token, { by: await DpopKey.generate() })), 'invalid_dpop_proof');
  });

  it('refuses a proof whose jwk WebCrypto will not import (key_ops without verify) as invalid_dpop_proof, not a 500', async () => {
    const token = await mint(key.jkt);
    await expectRefused(await call(token, await proofFor(token, { jwk: { ...key.publicJwk, key_ops: ['sign'] } })), 'invalid_dpop_proof');
  });

  it('refuses a proof used a second time', async () => {
    const token = await mint(key.jkt);
    const proof = await proofFor(token);
    expect((await call(token, proof)).status).toBe(200);
    await expectRefused(await call(token, proof), 'invalid_dpop_proof');
  });

  it('takes proofs of two keys that use the same jti: a jti is remembered within its key', async () => {
    const other = await DpopKey.generate();
    const jti = crypto.randomUUID();
    for (const by of [key, other]) {
      const token = await mint(by.jkt);
      expect((await call(token, await proofFor(token, { by, jti }))).status).toBe(200);
    }
  });

  it.each([
    ['no proof header', async (_token: string) => undefined],
    ['a stale proof', (token: string) => proofFor(token, { iat: Math.floor(Date.now() / 1000) - 120 })],
    ['a proof for another token (ath)', async (_token: string) => proofFor(await mint(key.jkt))],
    ['a proof without ath', (_token: string) => key.proof('POST', `${SERVICE}/deploy`)],
    ['a proof for another method', (token: string) => proofFor(token, { method: 'GET' })],
    ['a proof for another URL', (token: string) => proofFor(token, { url: `${SERVICE}/admin` })],
    ['a proof for another origin', (token: string) => proofFor(token, { url: 'https://evil.example/deploy' })],
  ])('refuses %s', async (_name, proof) => {
    const token = await mint(key.jkt);
    await expectRefused(await call(token, await proof(token)), 'invalid_dpop_proof');
  });

  it('refuses an unbound token presented as DPoP', async () => {
    const token = await mint(undefined);
    await expectRefused(await call(token, await proofFor(token)), 'invalid_token');
  });

  it('checks htu against the external origin when the service sits behind a proxy', async () => {
    const proxied = new Hono<{ Variables: KeywayAuthVariables }>();
    proxied.post('/deploy', keywayAuth({ ...options, externalOrigin: 'https://deploy.acme.dev' }), (c) => c.json({ ok: true }));
    const token = await mint(key.jkt);
    const send = async (url: string) =>
      proxied.request('http://10.0.0.7:8080/deploy', { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: await proofFor(token, { url }) } });
    expect((await send('https://deploy.acme.dev/deploy')).status).toBe(200);
    await expectRefused(await send('http://10.0.0.7:8080/deploy'), 'invalid_dpop_proof');
  });

  it('remembers proofs in the store it is given', async () => {
    const claimed: string[] = [];
    const store: DpopReplayStore = {
      claim: async (proofKey) => {
        claimed.push(proofKey);
        return claimed.length === 1;
      },
    };
    const token = await mint(key.jkt);
    const presentation = async () => ({ proof: await proofFor(token), method: 'POST', url: `${SERVICE}/deploy` });
    await expect(verifyAccessToken(token, { ...options, dpopReplay: store }, await presentation())).resolves.toMatchObject({ sub: 'ci' });
    const refused = verifyAccessToken(token, { ...options, dpopReplay: store }, await presentation());
    await expect(refused).rejects.toBeInstanceOf(AccessTokenError);
    await expect(refused).rejects.toMatchObject({ code: 'invalid_dpop_proof' });
    expect(claimed).toHaveLength(2);
    expect(claimed[0]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("judges a proof's age when the proof is checked: a slow key lookup (a JWKS fetched) does not stretch its 65 s", async () => {
    const token = await mint(key.jkt);
    const local = createLocalJWKSet(ring.jwks);
    // As old as a proof may be when verification begins, and older by the time the broker's keys answered.
    const proof = await proofFor(token, { iat: Math.floor(Date.now() / 1000) - 65 });
    const refused = verifyAccessToken(
      token,
      { ...options, keys: async (header, jws) => new Promise((resolve) => setTimeout(() => resolve(local(header, jws)), 1100)) },
      { proof, method: 'POST', url: `${SERVICE}/deploy` },
    );
    await expect(refused).rejects.toMatchObject({ code: 'invalid_dpop_proof', message: expect.stringContaining('"iat" claim timestamp check failed') });
  });
});
