import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REGEX_MAX_INPUT, REGEX_MAX_WIDE_INPUT } from '../../src/core/policy/safe-regex.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

/**
 * A policy regex reads no value over REGEX_MAX_INPUT characters, and a pipeline names its own branch: one pushed with a
 * name past the limit must not slip by a deny policy's regex, nor by an allow policy's `not: { regex: … }`. Such a value
 * is taken as the answer that grants nothing: held by the deny's regex, and by the regex under the allow's `not`. So is
 * one over REGEX_MAX_WIDE_INPUT characters that holds a character beyond Latin-1, which V8 matches more slowly.
 */
describe('a claim longer than a policy regex reads', () => {
  let broker: BrokerHarness;
  let guarded: TestIssuer;
  let previews: TestIssuer;
  const longName = `${'x/'.repeat(REGEX_MAX_INPUT / 2)}y`;
  // Past the shorter cap of a value holding a character beyond Latin-1, far under the other.
  const wideName = `${'ꞵ'.repeat(REGEX_MAX_WIDE_INPUT)}`;

  beforeAll(async () => {
    const base = inject('testIssuerBase');
    guarded = freshIssuer(base, 'regex-long-deny');
    previews = freshIssuer(base, 'regex-long-not');
    const tenant = 'repository_owner_id: "1200934", repository_id: "734201"';
    const issuer = (ci: TestIssuer) => `version: 1\nissuer: { kind: github, url: "${ci.url}" }\n`;
    broker = await startNodeHarness({
      'deploy.yaml': `${issuer(guarded)}match: { ${tenant} }\ngrant: { audience: https://deploy.acme.dev }\n`,
      'no-feature-branches.yaml': `${issuer(guarded)}effect: deny\nmatch: { ref: { regex: "refs/heads/feature/.*" } }\n`,
      'preview.yaml': `${issuer(previews)}match: { ${tenant}, ref: { not: { regex: "refs/heads/wip/.*" } } }\ngrant: { audience: https://preview.acme.dev }\n`,
    });
  });
  afterAll(() => broker?.close());

  const exchange = async (ci: TestIssuer, ref: string, audience: string) =>
    postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, { ref, sub: `repo:acme/api:ref:${ref}` })), { audience }));

  it("is held by a deny policy's regex, whatever it holds: refused as denied_by_policy", async () => {
    expect((await exchange(guarded, 'refs/heads/main', 'https://deploy.acme.dev')).status).toBe(200);
    for (const ref of ['refs/heads/feature/x', `refs/heads/feature/${longName}`, `refs/heads/${longName}`, `refs/heads/${wideName}`]) {
      const event = await expectRefusal(broker, await exchange(guarded, ref, 'https://deploy.acme.dev'), {
        error: 'invalid_request',
        reason: 'denied_by_policy',
      });
      expect(event.detail).toBe('denied by no-feature-branches');
    }
  });

  it("does not pass an allow policy's not: { regex: … }, whatever it holds", async () => {
    expect((await exchange(previews, 'refs/heads/main', 'https://preview.acme.dev')).status).toBe(200);
    for (const ref of ['refs/heads/wip/x', `refs/heads/wip/${longName}`, `refs/heads/${longName}`, `refs/heads/${wideName}`]) {
      expect(ref === 'refs/heads/wip/x' || ref.length > REGEX_MAX_INPUT || ref.length < REGEX_MAX_INPUT / 2).toBe(true);
      await expectRefusal(broker, await exchange(previews, ref, 'https://preview.acme.dev'), { error: 'invalid_request', reason: 'no_policy_matched' });
    }
  });
});
