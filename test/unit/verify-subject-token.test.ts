import { errors, jwtVerify } from 'jose';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ExchangeError } from '../../src/core/errors/exchange-error.ts';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';
import type { PolicySet } from '../../src/core/policy/policy-set.ts';
import { JwksCache } from '../../src/core/verify/jwks-cache.ts';
import { verifySubjectToken } from '../../src/core/verify/verify-subject-token.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';
import * as fixtures from '../support/ci-token-fixtures.ts';
import { ciClaims, newTestSite, TestIssuer } from '../support/test-issuer.ts';

const BROKER = 'https://keyway.test';
const http = { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init), timeoutMs: 2000, maxBytes: 64 * 1024, allowHttpLoopback: true };
/** The broker's default tolerance (KEYWAY_CLOCK_TOLERANCE_SECONDS). */
const TOLERANCE = 60;
/** The audience a second policy of the GitHub issuer takes its tokens for, beside the broker's. */
const SECOND_AUDIENCE = 'https://second.example';

/** Subject-token verification at the edges of its clock rules, on a fixed clock, with the test issuer's real keys. */
describe('verifySubjectToken on a fixed clock', () => {
  /** A stand-in for each CI system, and its documented token: GitHub's, and those whose preset's age limit is not GitHub's. */
  const ci = {} as Record<
    'github' | 'gitlab' | 'forgejo' | 'buildkite',
    { issuer: TestIssuer; token: (overrides: Record<string, unknown>) => Record<string, unknown> }
  >;
  let policies: PolicySet;
  let jwks: JwksCache;
  const now = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    const [gitlab, forgejo, buildkite] = await Promise.all(Array.from({ length: 3 }, () => newTestSite(inject('testIssuerBase'))));
    const at = (url: string, token: (iss: string, aud: string, overrides: Record<string, unknown>) => Record<string, unknown>) => ({
      issuer: new TestIssuer(url),
      token: (overrides: Record<string, unknown>) => token(url, BROKER, overrides),
    });
    Object.assign(ci, {
      github: at(freshIssuer(inject('testIssuerBase'), 'verify').url, ciClaims),
      gitlab: at(gitlab ?? '', fixtures.gitlabToken),
      forgejo: at(`${forgejo}/api/actions`, fixtures.forgejoToken),
      buildkite: at(buildkite ?? '', fixtures.buildkiteToken),
    });
    const policy = (kind: string, url: string, match: string) =>
      `version: 1\nissuer: { kind: ${kind}, url: "${url}" }\nmatch:\n  ${match}\ngrant:\n  audience: https://a.example\n`;
    policies = loadPolicies(
      [
        { path: 'p.yaml', text: policy('github', ci.github.issuer.url, 'repository_id: "734201"') },
        { path: 'second.yaml', text: `${policy('github', ci.github.issuer.url, 'repository_id: "734202"')}subject_audience: ${SECOND_AUDIENCE}\n` },
        { path: 'gitlab.yaml', text: policy('gitlab', ci.gitlab.issuer.url, 'project_id: "20"') },
        { path: 'forgejo.yaml', text: policy('forgejo', ci.forgejo.issuer.url, 'repository: acme/api') },
        { path: 'buildkite.yaml', text: policy('buildkite', ci.buildkite.issuer.url, 'organization_id: 0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec') },
      ],
      { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: true },
    );
    jwks = new JwksCache(http, undefined, () => now * 1000);
  });

  const verify = (signed: string) => verifySubjectToken(signed, { issuers: policies, jwks, now: now * 1000, clockToleranceSeconds: TOLERANCE });
  /** `verified`, or the reason of the refusal it throws, or of the one its audience earns. */
  const reasonOf = async (overrides: Record<string, unknown>, { issuer, token } = ci.github) =>
    verify(await issuer.sign(token(overrides))).then(
      ({ audienceRefused }) => audienceRefused?.reason ?? 'verified',
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

  it.each([
    ['github', 600],
    ['gitlab', 3600],
    ['forgejo', 600],
    ['buildkite', 600],
  ] as const)('takes a %s token issued up to %i s and the tolerated skew ago, whatever its exp, not one second more', async (name, maxAge) => {
    const issuedAgo = (seconds: number) => reasonOf({ iat: now - seconds, nbf: now - seconds, exp: now + 300 }, ci[name]);
    expect(await issuedAgo(maxAge + TOLERANCE)).toBe('verified');
    expect(await issuedAgo(maxAge + TOLERANCE + 1)).toBe('token_too_old');
  });

  // jose is never asked to check the audience (its refusal waits for the policies): keyway's own judgement must take
  // exactly the audiences jose's check would, the ones the issuer's policies accept.
  it.each([
    ['the broker’s, as a string', BROKER, 'verified'],
    ['another policy’s, as a string', SECOND_AUDIENCE, 'verified'],
    ['one no policy accepts', 'https://elsewhere.example', 'audience_mismatch'],
    ['a list holding an accepted one among others', ['https://elsewhere.example', SECOND_AUDIENCE], 'verified'],
    ['a list holding an accepted one and a number', [1, BROKER], 'verified'],
    ['a list of others', ['https://elsewhere.example', 'https://other.example'], 'audience_mismatch'],
    ['an empty list', [], 'audience_mismatch'],
    ['none', undefined, 'audience_mismatch'],
    ['null', null, 'audience_mismatch'],
    ['a number', 1, 'audience_mismatch'],
    ['an object naming an accepted one', { [BROKER]: true }, 'audience_mismatch'],
    ['a list nested in a list', [[BROKER]], 'audience_mismatch'],
    ['the broker’s with a trailing slash', `${BROKER}/`, 'audience_mismatch'],
    ['the broker’s in capitals', 'HTTPS://KEYWAY.TEST', 'audience_mismatch'],
  ] as const)('judges an aud of %s as jose’s audience check does', async (_label, aud, expected) => {
    const signed = await ci.github.issuer.sign(ci.github.token({ aud }));
    const jose = await jwtVerify(signed, await jwks.keysFor(ci.github.issuer.url), {
      audience: [...policies.acceptedAudiences(ci.github.issuer.url)],
      currentDate: new Date(now * 1000),
    }).then(
      () => 'verified',
      (error: unknown) => {
        if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'aud') return 'audience_mismatch';
        throw error;
      },
    );
    expect({ keyway: await reasonOf({ aud }), jose }).toEqual({ keyway: expected, jose: expected });
  });

  it('takes an nbf up to the tolerated skew in the future, not one second more', async () => {
    expect(await reasonOf({ iat: now, nbf: now + TOLERANCE, exp: now + 300 })).toBe('verified');
    expect(await reasonOf({ iat: now, nbf: now + TOLERANCE + 1, exp: now + 300 })).toBe('token_not_yet_valid');
  });
});
