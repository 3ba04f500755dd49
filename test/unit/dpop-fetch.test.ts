import { Hono } from 'hono';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDpopProof, dpopFetch, generateDpopKey, type DpopKeyPair } from '../../src/core/dpop/dpop-fetch.ts';
import { verifyDpopProof } from '../../src/core/dpop/dpop-proof.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { keywayAuth, type KeywayAuthVariables } from '../../src/http/middleware/keyway-auth.ts';

const ISSUER = 'https://keyway.test';
const SERVICE = 'https://deploy.acme.dev';

describe('the DPoP client (generateDpopKey, createDpopProof, dpopFetch)', () => {
  let key: DpopKeyPair;
  let token: string;
  let app: Hono<{ Variables: KeywayAuthVariables }>;
  const viaApp = ((input: RequestInfo | URL, init?: RequestInit) => app.request(String(input), init)) as typeof fetch;

  beforeAll(async () => {
    key = await generateDpopKey();
    const ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    const grant = { policy: { id: 'deploy' } as Policy, audiences: [SERVICE], scopes: ['deploy:write'], ttlSeconds: 300, subject: 'ci', claims: {} };
    const jkt = await calculateJwkThumbprint(key.publicJwk, 'sha256');
    token = (
      await mintAccessToken({
        issuer: ISSUER,
        key: ring.signing,
        grant,
        source: { iss: 'https://ci.example', sub: 'job' },
        now: Date.now(),
        confirmation: { jkt },
      })
    ).token;
    app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.post('/deploy', keywayAuth({ issuer: ISSUER, audience: SERVICE, keys: createLocalJWKSet(ring.jwks) }), async (c) =>
      c.json({ body: await c.req.text() }),
    );
  });

  it('keeps the private key inside WebCrypto: it cannot be exported, and the public JWK has no private member', async () => {
    expect(key.privateKey.extractable).toBe(false);
    await expect(exportJWK(key.privateKey)).rejects.toThrow();
    expect(Object.keys(key.publicJwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
  });

  it('makes proofs the broker accepts for the request they name', async () => {
    const proof = await createDpopProof(key, { method: 'post', url: `${SERVICE}/deploy?x=1`, accessToken: token });
    const verified = await verifyDpopProof(proof, { method: 'POST', url: `${SERVICE}/deploy`, now: Date.now(), accessToken: token });
    expect(verified.jkt).toBe(await calculateJwkThumbprint(key.publicJwk, 'sha256'));
  });

  it('calls a keywayAuth service with the bound token, a fresh proof each time, and the body intact', async () => {
    const call = dpopFetch(key, { accessToken: token, fetch: viaApp });
    for (const body of ['first', 'second']) {
      const response = await call(`${SERVICE}/deploy`, { method: 'POST', body });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ body });
    }
    const bearer = await app.request(`${SERVICE}/deploy`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(bearer.status).toBe(401);
  });
});
