import { errors, type JWK } from 'jose';
import { describe, expect, inject, it } from 'vitest';
import { DEFAULT_JWKS_CACHE_POLICY, IssuerUnavailableError, JwksCache, type JwksCachePolicy } from '../../src/core/verify/jwks-cache.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';
import type { TestIssuer } from '../support/test-issuer.ts';

const http = { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init), timeoutMs: 2000, maxBytes: 64 * 1024, allowHttpLoopback: true };

function setup(policy: Partial<JwksCachePolicy> = {}): { issuer: TestIssuer; cache: JwksCache; clock: { now: number } } {
  const clock = { now: 1_000_000_000_000 };
  return {
    issuer: freshIssuer(inject('testIssuerBase'), 'cache'),
    cache: new JwksCache(http, { ...DEFAULT_JWKS_CACHE_POLICY, ...policy }, () => clock.now),
    clock,
  };
}

describe('JwksCache', () => {
  it('fetches discovery then the JWKS once, and shares one fetch among concurrent callers', async () => {
    const { issuer, cache } = setup();
    await Promise.all(Array.from({ length: 10 }, () => cache.keysFor(issuer.url)));
    expect(await issuer.hits()).toMatchObject({ discovery: 1, jwks: 1 });
    expect(cache.stats).toEqual({ fetches: 1, fetchFailures: 0 });
  });

  it('honours Cache-Control max-age within the floor and ceiling', async () => {
    const { issuer, cache, clock } = setup();
    await issuer.settings({ cacheControl: 'max-age=120' });
    await cache.keysFor(issuer.url);
    clock.now += 100_000;
    await cache.keysFor(issuer.url);
    expect((await issuer.hits()).jwks).toBe(1);
    clock.now += 30_000;
    await cache.keysFor(issuer.url);
    expect((await issuer.hits()).jwks).toBe(2);

    await issuer.settings({ cacheControl: 'max-age=1' });
    clock.now += 200_000;
    await cache.keysFor(issuer.url);
    clock.now += 59_000;
    await cache.keysFor(issuer.url);
    expect((await issuer.hits()).jwks).toBe(3);
  });

  it('keeps serving cached keys through an outage, for a bounded time, without hammering the issuer', async () => {
    const { issuer, cache, clock } = setup({ staleIfErrorSeconds: 3600 });
    await issuer.settings({ cacheControl: 'max-age=60' });
    const keys = await cache.keysFor(issuer.url);
    await issuer.settings({ down: true });

    clock.now += 61_000;
    expect(await cache.keysFor(issuer.url)).toBe(keys);
    const afterFailure = await issuer.hits();
    clock.now += 10_000;
    expect(await cache.keysFor(issuer.url)).toBe(keys);
    expect(await issuer.hits()).toEqual(afterFailure);

    clock.now += 3600_000;
    await expect(cache.keysFor(issuer.url)).rejects.toThrow(IssuerUnavailableError);
    expect(cache.stats.fetchFailures).toBeGreaterThanOrEqual(2);
  });

  it('refetches for an unknown kid at most once per cooldown', async () => {
    const { issuer, cache, clock } = setup({ refetchCooldownSeconds: 30 });
    await cache.keysFor(issuer.url);
    expect(await cache.refreshForUnknownKey(issuer.url)).toBeDefined();
    expect(await cache.refreshForUnknownKey(issuer.url)).toBeUndefined();
    clock.now += 29_000;
    expect(await cache.refreshForUnknownKey(issuer.url)).toBeUndefined();
    expect((await issuer.hits()).jwks).toBe(2);
    clock.now += 2_000;
    expect(await cache.refreshForUnknownKey(issuer.url)).toBeDefined();
    expect((await issuer.hits()).jwks).toBe(3);
  });

  it('gives every token naming a new kid while its refetch runs the refetched keys: one fetch, shared, not a refusal', async () => {
    const { issuer, cache } = setup();
    await cache.keysFor(issuer.url);
    const [first, second] = await Promise.all([cache.refreshForUnknownKey(issuer.url), cache.refreshForUnknownKey(issuer.url)]);
    expect(first).toBeDefined();
    expect(second).toBe(first);
    expect((await issuer.hits()).jwks).toBe(2);
  });

  it('asks a failing issuer with no keys once per cooldown, however many tokens arrive', async () => {
    const { issuer, cache, clock } = setup({ refetchCooldownSeconds: 30 });
    await issuer.settings({ down: true });
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await expect(cache.keysFor(issuer.url)).rejects.toThrow(IssuerUnavailableError);
      clock.now += 5_000;
    }
    expect(await issuer.hits()).toMatchObject({ discovery: 1, jwks: 0 });
    await expect(cache.keysFor(issuer.url)).rejects.toThrow(/answered 503 \(tried again at most once per 30 s\)/);

    await issuer.settings({ down: false });
    clock.now += 5_000;
    expect(typeof (await cache.keysFor(issuer.url))).toBe('function');
    expect(await issuer.hits()).toMatchObject({ discovery: 2, jwks: 1 });
  });

  it('keeps the keys of at most maxIssuers issuers, forgetting the least recently used first', async () => {
    const { cache } = setup({ maxIssuers: 2 });
    const first = freshIssuer(inject('testIssuerBase'), 'lru-a');
    const second = freshIssuer(inject('testIssuerBase'), 'lru-b');
    const third = freshIssuer(inject('testIssuerBase'), 'lru-c');
    await cache.keysFor(first.url);
    await cache.keysFor(second.url);
    await cache.keysFor(first.url);
    await cache.keysFor(third.url);
    await cache.keysFor(first.url);
    expect((await first.hits()).jwks).toBe(1);
    await cache.keysFor(second.url);
    expect((await second.hits()).jwks).toBe(2);
  });

  it.each([
    ['a symmetric key', (key: JWK): JWK => ({ kty: 'oct', kid: key.kid, k: 'c2VjcmV0LWtleS1vZi10aGUtaXNzdWVy' })],
    ['a private key', (key: JWK): JWK => ({ ...key, d: key.n })],
    ['an encryption key', (key: JWK): JWK => ({ ...key, use: 'enc' })],
  ])('takes no key from a JWKS listing only %s: RFC 7517 keys that are not public signature keys are never used', async (_, listed) => {
    const { issuer, cache } = setup();
    const [key] = (await issuer.jwks()).keys as [JWK];
    await issuer.settings({ jwks: { kind: 'replaced', body: { keys: [listed(key)] } } });
    await expect(cache.keysFor(issuer.url)).rejects.toThrow(/holds no public signing keys/);
  });

  it('keeps the first 100 keys of a JWKS, however many it lists', async () => {
    const { issuer, cache } = setup();
    const [key] = (await issuer.jwks()).keys as [JWK];
    await issuer.settings({ jwks: { kind: 'replaced', body: { keys: Array.from({ length: 101 }, (_, index) => ({ ...key, kid: `k${index}` })) } } });
    const getKey = await cache.keysFor(issuer.url);
    const token = { payload: '', signature: '' };
    await expect(getKey({ alg: 'RS256', kid: 'k99' }, token)).resolves.toBeDefined();
    await expect(getKey({ alg: 'RS256', kid: 'k100' }, token)).rejects.toThrow(errors.JWKSNoMatchingKey);
  });

  it('refuses keys when discovery names a different issuer than the one configured', async () => {
    const { issuer, cache } = setup();
    await expect(cache.keysFor(`${issuer.url}/`)).rejects.toThrow(/names issuer/);
    expect((await issuer.hits()).jwks).toBe(0);
  });

  it('refuses keys when discovery names the issuer in another case: issuer identifiers compare as strings (OpenID Discovery §4.3)', async () => {
    const { issuer, cache } = setup();
    const named = issuer.url.replace('/cache-', '/CACHE-');
    await issuer.settings({ discovery: { kind: 'replaced', body: { issuer: named, jwks_uri: `${issuer.url}/jwks` } } });
    await expect(cache.keysFor(issuer.url)).rejects.toThrow(/names issuer/);
    expect((await issuer.hits()).jwks).toBe(0);
  });

  it('refuses plain http unless loopback http is allowed', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'http');
    const cache = new JwksCache({ ...http, allowHttpLoopback: false });
    await expect(cache.keysFor(issuer.url)).rejects.toThrow(/KEYWAY_ALLOW_HTTP_LOOPBACK/);
    expect(await issuer.hits()).toEqual({ discovery: 0, jwks: 0, trap: 0 });
  });
});
