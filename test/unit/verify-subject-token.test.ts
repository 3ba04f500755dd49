import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ExchangeError } from '../../src/core/errors/exchange-error.ts';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';
import type { PolicySet } from '../../src/core/policy/policy-set.ts';
import { JwksCache } from '../../src/core/verify/jwks-cache.ts';
import { verifySubjectToken } from '../../src/core/verify/verify-subject-token.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';

const BROKER = 'https://keyway.test';
const http = { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init), timeoutMs: 2000, maxBytes: 64 * 1024, allowHttpLoopback: true };
/** The broker's default tolerance (KEYWAY_CLOCK_TOLERANCE_SECONDS). */
const TOLERANCE = 60;

/** Subject-token verification at the edges of its clock rules, on a fixed clock, with the test issuer's real keys. */
describe('verifySubjectToken on a fixed clock', () => {
  let issuer: TestIssuer;
  let policies: PolicySet;
  let jwks: JwksCache;
  const now = Math.floor(Date.now() / 1000);

  beforeAll(() => {
    issuer = freshIssuer(inject('testIssuerBase'), 'verify');
    policies = loadPolicies(
      [
        {
          path: 'p.yaml',
          text: `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://a.example\n`,
        },
      ],
      { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: true },
    );
    jwks = new JwksCache(http, undefined, () => now * 1000);
  });

  const verify = async (overrides: Record<string, unknown>) =>
    verifySubjectToken(await issuer.sign(ciClaims(issuer.url, BROKER, overrides)), {
      issuers: policies,
      jwks,
      now: now * 1000,
      clockToleranceSeconds: TOLERANCE,
    });
  const reasonOf = async (overrides: Record<string, unknown>) =>
    verify(overrides).then(
      () => 'verified',
      (error: unknown) => (error instanceof ExchangeError ? error.reason : error),
    );

  it('takes an exp up to the tolerated skew in the past, not one second more', async () => {
    const iat = now - 120;
    expect(await reasonOf({ iat, nbf: iat, exp: now - TOLERANCE + 1 })).toBe('verified');
    expect(await reasonOf({ iat, nbf: iat, exp: now - TOLERANCE })).toBe('token_expired');
  });

  it('refuses null for a claim its issuer always sends as a string: only a claim typed string|null may be null', async () => {
    expect(await reasonOf({ environment: 'production' })).toBe('verified');
    expect(await reasonOf({ environment: null })).toBe('claims_invalid');
  });

  it('takes a GitHub token issued up to its 10 minutes and the tolerated skew ago, whatever its exp, not one second more', async () => {
    const exp = now + 300;
    expect(await reasonOf({ iat: now - 600 - TOLERANCE, nbf: now - 600 - TOLERANCE, exp })).toBe('verified');
    expect(await reasonOf({ iat: now - 600 - TOLERANCE - 1, nbf: now - 600 - TOLERANCE - 1, exp })).toBe('token_too_old');
  });

  it('takes an nbf up to the tolerated skew in the future, not one second more', async () => {
    expect(await reasonOf({ iat: now, nbf: now + TOLERANCE, exp: now + 300 })).toBe('verified');
    expect(await reasonOf({ iat: now, nbf: now + TOLERANCE + 1, exp: now + 300 })).toBe('token_not_yet_valid');
  });
});
