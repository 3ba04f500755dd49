import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, inject, it } from 'vitest';
import { newTestSite, TestIssuer } from '../support/test-issuer.ts';

async function discovery(url: string): Promise<{ issuer: string; jwks_uri: string }> {
  const base = url.endsWith('/') ? url.slice(0, -1) : url;
  return (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
}

describe('the test issuer server stands in for an issuer at its exact URL', () => {
  it('serves issuers at multi-segment paths, each with its own keys', async () => {
    const site = await newTestSite(inject('testIssuerBase'));
    const org = new TestIssuer(`${site}/org/8d5a3a2c-3c16-4a3e-9d55-4c4d2f3e9b11`);
    const root = new TestIssuer(site);
    expect(await discovery(org.url)).toEqual(expect.objectContaining({ issuer: org.url, jwks_uri: `${org.url}/jwks` }));
    expect(await discovery(root.url)).toEqual(expect.objectContaining({ issuer: site, jwks_uri: `${site}/jwks` }));
    const [orgKeys, rootKeys] = await Promise.all([org.jwks(), root.jwks()]);
    expect(orgKeys.keys[0]?.['kid']).not.toBe(rootKeys.keys[0]?.['kid']);
  });

  it('keeps a trailing slash in the issuer it announces, with discovery at the path without it', async () => {
    const aks = new TestIssuer(`${inject('testIssuerBase')}/aks-${crypto.randomUUID()}/`);
    await aks.rotate({ alg: 'ES384' });
    expect((await discovery(aks.url)).issuer).toBe(aks.url);
    expect((await aks.jwks()).keys.map((key) => key['alg'])).toEqual(['ES384']);
    // The same path without the slash is that issuer, not a second one.
    await expect(new TestIssuer(aks.url.slice(0, -1)).rotate()).rejects.toThrow(/409/);
  });

  it('starts a separate origin per site', async () => {
    const base = inject('testIssuerBase');
    const [a, b] = await Promise.all([newTestSite(base), newTestSite(base)]);
    expect(new URL(a).port).not.toBe(new URL(b).port);
    expect(new URL(a).port).not.toBe(new URL(base).port);
  });

  it('signs many claim sets in one request, each exactly as given, with the published RS256 key', async () => {
    const issuer = new TestIssuer(`${inject('testIssuerBase')}/many-${crypto.randomUUID()}`);
    const claims = Array.from({ length: 3 }, (_, index) => ({ iss: issuer.url, sub: `job-${index}`, jti: crypto.randomUUID() }));
    const tokens = await issuer.signMany(claims);
    const keys = createLocalJWKSet(await issuer.jwks());
    const verified = await Promise.all(tokens.map((token) => jwtVerify(token, keys, { algorithms: ['RS256'] })));
    expect(verified.map(({ payload }) => payload)).toEqual(claims);
    expect(verified.map(({ protectedHeader }) => protectedHeader.kid)).toEqual(Array(3).fill((await issuer.jwks()).keys[0]?.['kid']));
  });
});
