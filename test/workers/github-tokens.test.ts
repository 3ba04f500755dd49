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
    await expect(
      createWorkerBroker({ ...workerEnv, ...github.settings, KEYWAY_MASTER_KEY: '', KEYWAY_MASTER_KEY_PREVIOUS: '' }, [], { log: silentLogger }),
    ).rejects.toThrow(/KEYWAY_MASTER_KEY/);
  });

  it("revokeEndedWork makes a CI job's tokens due, and its run's without check_run_id, and the KeywayState alarm revokes them", async () => {
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
    const exchange = async (claims: Record<string, unknown>) =>
      (await postToken(client, githubForm(await issuer.sign(ciClaims(issuer.url, workerEnv.KEYWAY_ISSUER, { ref: 'refs/heads/main', ...claims }))))).body[
        'access_token'
      ] as string;
    const ours = await exchange({ run_id: '4401', check_run_id: '5501' });
    // The same run's other job (a matrix build), and an older GHES token of the run, without check_run_id.
    const sibling = await exchange({ run_id: '4401', check_run_id: '5502' });
    const unmatched = await exchange({ run_id: '4401' });
    const theirs = await exchange({ run_id: '4402', check_run_id: '5501' });
    expect([ours, sibling, unmatched, theirs]).toEqual(Array(4).fill(expect.stringMatching(/^ghs_/)));
    expect(await broker.github?.revokeEndedWork('734201', '4401', { kind: 'job', checkRunId: '5501', attempt: undefined })).toBe(2);
    await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    const status = async (token: string) => (await github.repositoriesVisibleTo(token)).status;
    expect([await status(ours), await status(unmatched)]).toEqual([401, 401]);
    expect([await status(sibling), await status(theirs)]).toEqual([200, 200]);
    expect(await broker.github?.revokeEndedWork('734201', '4401', { kind: 'job', checkRunId: '5502', attempt: undefined })).toBe(1);
    await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    expect([await status(sibling), await status(theirs)]).toEqual([401, 200]);
    // Run 4402 ends: its token goes whatever its job.
    expect(await broker.github?.revokeEndedWork('734201', '4402', { kind: 'run', attempt: undefined })).toBe(1);
    await runDurableObjectAlarm(keywayState(workerEnv.STATE));
    expect(await status(theirs)).toBe(401);
  });
});
