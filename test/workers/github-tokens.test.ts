import { createExecutionContext, runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION, githubExchangeSuite, githubForm, githubPolicies } from '../suites/github-exchange-suite.ts';
import { githubTokenMapSuite } from '../suites/github-token-map-suite.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

githubExchangeSuite(
  'Workers',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

githubTokenMapSuite(
  'Workers',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

describe('GitHub tokens on Workers', () => {
  it('refuses to start with a GitHub App but no master key to seal pending tokens under', async () => {
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await expect(createWorkerBroker({ ...workerEnv, ...github.settings, KEYWAY_MASTER_KEY: '' }, [], { log: silentLogger })).rejects.toThrow(
      /KEYWAY_MASTER_KEY/,
    );
  });

  it("revokeRun makes a CI run's tokens due, and the KeywayState alarm revokes them", async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'github-run');
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    const files = Object.entries(githubPolicies(issuer)).map(([path, text]) => ({ path, text }));
    const broker = await createWorkerBroker({ ...workerEnv, ...github.settings }, files, { log: silentLogger });
    const client = {
      issuer: workerEnv.KEYWAY_ISSUER,
      request: async (path: string, init?: RequestInit) =>
        broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), workerEnv, createExecutionContext()),
    };
    const exchange = async (runId: string) =>
      (await postToken(client, githubForm(await issuer.sign(ciClaims(issuer.url, workerEnv.KEYWAY_ISSUER, { ref: 'refs/heads/main', run_id: runId }))))).body[
        'access_token'
      ] as string;
    const ours = await exchange('4401');
    const theirs = await exchange('4402');
    expect([ours, theirs]).toEqual([expect.stringMatching(/^ghs_/), expect.stringMatching(/^ghs_/)]);
    expect(await broker.github?.revokeRun('734201', '4401')).toBe(1);
    await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    expect((await github.repositoriesVisibleTo(ours)).status).toBe(401);
    expect((await github.repositoriesVisibleTo(theirs)).status).toBe(200);
  });
});
