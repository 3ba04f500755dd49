import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { testConfig, writeTree } from './node-harness.ts';

/**
 * A pipeline names its own branch, and /token matches it against the policies' regexes on the thread that serves every
 * request. A regex that tries a value in exponentially many ways (`([a-z]|[a-z0-9-])+`: 26 letters and a `!` took 5.5 s,
 * each more letter twice as long), or in polynomially many (`.*-.*-.*-.*`: 400 dashes took 8 s), would let one crafted
 * branch stall the broker; a check of nesting alone passes both (one level of repetition). Such a policy does not load.
 */
describe('a policy regex that backtracks catastrophically on a value the pipeline chooses', () => {
  let broker: NodeBroker;
  let ci: TestIssuer;
  let root: string;
  const issuer = () => `version: 1\nissuer: { kind: github, url: "${ci.url}" }\n`;
  const tenant = 'repository_owner_id: "1200934", repository_id: "734201"';

  beforeAll(async () => {
    ci = freshIssuer(inject('testIssuerBase'), 'regex-backtracking');
    root = writeTree({ 'policies/README': 'policies are written once the issuer is known' });
    writeFileSync(
      join(root, 'policies', 'release.yaml'),
      `${issuer()}match: { ${tenant}, ref: { regex: "refs/heads/release-[0-9]+" } }\ngrant: { audience: https://deploy.acme.dev }\n`,
    );
    broker = await startNodeBroker(testConfig(root), { log: silentLogger });
  });
  afterAll(() => broker?.close());

  it('does not load (a group of alternatives repeated, three unbounded repetitions), and the set serving answers a crafted branch at once', async () => {
    for (const [regex, why] of [
      ['refs/heads/([a-z]|[a-z0-9-])+', /a repeated group matches in more than one way/],
      ['refs/heads/.*-.*-.*', /more ways than two unbounded repetitions/],
      ['refs/heads/(?:[a-z]|[a-z0-9-]){1,22}', /more ways than two unbounded repetitions/],
      ['refs/heads/a?a?a?[acegikmoqsuwy02468]*[acegikmoqsuwy02468]*', /more ways than two unbounded repetitions/],
    ] as const) {
      writeFileSync(
        join(root, 'policies', 'branches.yaml'),
        `${issuer()}match: { ${tenant}, ref: { regex: "${regex}" } }\ngrant: { audience: https://deploy.acme.dev }\n`,
      );
      const reloaded = broker.reloadPolicies();
      expect(reloaded).toMatchObject({
        ok: false,
        policies: 1,
        problems: [expect.stringMatching(/^branches\.yaml:3:\d+ regex .* can backtrack catastrophically/)],
      });
      expect(reloaded.problems?.[0]).toMatch(why);
      const crafted = `refs/heads/${'a'.repeat(26)}!`;
      const started = Date.now();
      const response = await fetch(`${broker.url}/token`, {
        method: 'POST',
        body: exchangeForm(await ci.sign(ciClaims(ci.url, broker.config.issuer, { ref: crafted, sub: `repo:acme/api:ref:${crafted}` })), {
          audience: 'https://deploy.acme.dev',
        }),
      });
      expect(response.status).toBe(400);
      expect(Date.now() - started).toBeLessThan(2000);
    }
  });
});
