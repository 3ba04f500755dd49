import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeForm, expectRefusal, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { startNodeHarness } from './node-harness.ts';

// An issuer that publishes an RSA key one bit short of 2048 beside a 2048-bit one. jose, and keyway's Node verifier with it, refuse
// to verify with the short key by throwing a TypeError, which is no refusal: it must never reach the exchange as a 500.
const weak = generateKeyPairSync('rsa', { modulusLength: 2047 });
const keys = { weak, padded: weak, strong: generateKeyPairSync('rsa', { modulusLength: 2048 }) };
/** `padded` is the short key again, its modulus written with a leading zero byte (RFC 7518 says not to): 2048 bits of text, no longer a key. */
const jwk = (kid: keyof typeof keys) => {
  const key = keys[kid].publicKey.export({ format: 'jwk' });
  const n = kid === 'padded' ? Buffer.concat([Buffer.alloc(1), Buffer.from(key.n as string, 'base64url')]).toString('base64url') : key.n;
  return { ...key, n, kid, alg: 'RS256', use: 'sig' };
};

function sign(key: KeyObject, kid: string, claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode({ alg: 'RS256', kid, typ: 'JWT' })}.${encode(claims)}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`;
}

describe('an issuer that publishes an RSA key shorter than 2048 bits', () => {
  let issuer: Awaited<ReturnType<typeof serveOnLoopback>>;
  let broker: BrokerHarness;
  // A second issuer on the same server publishes the short key alone.
  const weakOnly = () => `${issuer.base}/weak-only`;
  const token = (kid: keyof typeof keys, iss = issuer.base) => {
    const now = Math.floor(Date.now() / 1000);
    return sign(keys[kid].privateKey, kid, { iss, aud: broker.issuer, sub: 'svc', iat: now, exp: now + 300, jti: randomUUID() });
  };
  const policy = (iss: string) => `version: 1\nissuer: "${iss}"\nmatch: { sub: svc }\ngrant: { audience: https://svc.example }\n`;

  beforeAll(async () => {
    const app = new Hono();
    app.get('/.well-known/openid-configuration', (c) => c.json({ issuer: issuer.base, jwks_uri: `${issuer.base}/jwks` }));
    app.get('/jwks', (c) => c.json({ keys: [jwk('weak'), jwk('padded'), jwk('strong')] }));
    app.get('/weak-only/.well-known/openid-configuration', (c) => c.json({ issuer: weakOnly(), jwks_uri: `${weakOnly()}/jwks` }));
    app.get('/weak-only/jwks', (c) => c.json({ keys: [jwk('weak')] }));
    issuer = await serveOnLoopback(app.fetch);
    broker = await startNodeHarness({ 'svc.yaml': policy(issuer.base), 'weak-only.yaml': policy(weakOnly()) });
  });
  afterAll(async () => {
    await broker.close();
    await issuer.close();
  });

  it('never verifies with the short key: its tokens are refused signature_invalid with a record, not a 500, and the long key still works', async () => {
    expect((await postToken(broker, exchangeForm(token('strong')))).status).toBe(200);
    for (const kid of ['weak', 'padded'] as const) {
      const refused = await postToken(broker, exchangeForm(token(kid)));
      const event = await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'signature_invalid' });
      expect(event.issuer ?? event.subject_token?.claimed_iss).toBe(issuer.base);
    }
  });

  it('treats a JWKS whose keys are all too short as keys it cannot fetch: issuer_unavailable, with a record', async () => {
    const refused = await postToken(broker, exchangeForm(token('weak', weakOnly())));
    const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'issuer_unavailable' });
    expect(event.subject_token?.claimed_iss).toBe(weakOnly());
    expect(event.detail).toMatch(/weak-only\/jwks holds no public signing keys/);
  });
});
