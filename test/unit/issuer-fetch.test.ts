import { describe, expect, inject, it } from 'vitest';
import { OUTBOUND_MAX_BYTES, OUTBOUND_TIMEOUT_MS } from '../../src/core/outbound/outbound-http.ts';
import { IssuerUnavailableError, JwksCache } from '../../src/core/verify/jwks-cache.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';

/** The bounds the broker puts on discovery and JWKS fetches (src/runtimes/create-broker.ts), over loopback http. */
const brokerHttp = {
  fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init),
  timeoutMs: OUTBOUND_TIMEOUT_MS,
  maxBytes: OUTBOUND_MAX_BYTES,
  allowHttpLoopback: true,
};

const ENDPOINTS = ['discovery', 'jwks'] as const;

/**
 * What the README promises of every fetch of an issuer's discovery document and JWKS: no
 * redirects, a 5 s deadline, a 256 KiB cap. Each through a fresh cache, against a test issuer
 * on 127.0.0.1 that misbehaves for real (test/support/misbehaviour.ts).
 */
describe('issuer discovery and JWKS fetches', () => {
  it('are bounded by the broker at 5 s and 256 KiB', () => {
    expect(OUTBOUND_TIMEOUT_MS).toBe(5000);
    expect(OUTBOUND_MAX_BYTES).toBe(256 * 1024);
  });

  it.each(ENDPOINTS)('never follow a redirect (%s)', async (endpoint) => {
    const issuer = freshIssuer(inject('testIssuerBase'), `redirect-${endpoint}`);
    await issuer.settings({ [endpoint]: { kind: 'redirect' } });
    await expect(new JwksCache(brokerHttp).keysFor(issuer.url)).rejects.toThrow(IssuerUnavailableError);
    expect(await issuer.hits()).toMatchObject({ trap: 0 });
  });

  // The deadline is shortened to keep the test fast; the broker's own is asserted above.
  it.each(ENDPOINTS)('give up on an issuer that takes the request and never answers, at the deadline (%s)', async (endpoint) => {
    const issuer = freshIssuer(inject('testIssuerBase'), `stall-${endpoint}`);
    await issuer.settings({ [endpoint]: { kind: 'stall' } });
    const started = Date.now();
    await expect(new JwksCache({ ...brokerHttp, timeoutMs: 200 }).keysFor(issuer.url)).rejects.toThrow(IssuerUnavailableError);
    expect(Date.now() - started).toBeLessThan(OUTBOUND_TIMEOUT_MS);
  });

  it.each(ENDPOINTS.flatMap((endpoint) => [true, false].map((declared) => [endpoint, declared] as const)))(
    'take a document of exactly 256 KiB and refuse one a byte longer (%s, Content-Length sent: %s)',
    async (endpoint, declared) => {
      const issuer = freshIssuer(inject('testIssuerBase'), `padded-${endpoint}`);
      await issuer.settings({ [endpoint]: { kind: 'padded', bytes: 256 * 1024, declared } });
      await expect(new JwksCache(brokerHttp).keysFor(issuer.url)).resolves.toBeTypeOf('function');
      await issuer.settings({ [endpoint]: { kind: 'padded', bytes: 256 * 1024 + 1, declared } });
      await expect(new JwksCache(brokerHttp).keysFor(issuer.url)).rejects.toThrow(IssuerUnavailableError);
    },
  );
});
