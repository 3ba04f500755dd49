import { createExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { githubWebhookSuite, policyRepositoryOnFakeGitHub } from '../suites/github-webhook-suite.ts';
import { deliveryRequest } from '../support/github-webhook-delivery.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

githubWebhookSuite(
  'Workers',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

describe('the live policy set on Workers', () => {
  it('is the same in every isolate: one that never saw the push serves the new set from its next request', async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'isolates');
    const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
    const env = { ...workerEnv, ...repo.settings };
    const files = Object.entries(repo.initialPolicies).map(([path, text]) => ({ path, text }));
    // Two isolates: each builds its own broker from the bundle, as runtimes/workers/main.ts does.
    const [one, two] = await Promise.all([createWorkerBroker(env, files, { log: silentLogger }), createWorkerBroker(env, files, { log: silentLogger })]);
    const client = (broker: typeof one) => ({
      issuer: workerEnv.KEYWAY_ISSUER,
      request: async (path: string, init?: RequestInit) =>
        broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), env, createExecutionContext()),
    });
    const exchange = async (broker: typeof one, environment: string) =>
      postToken(client(broker), exchangeForm(await ci.sign(ciClaims(ci.url, workerEnv.KEYWAY_ISSUER, { environment }))));

    expect((await exchange(two, 'staging')).status).toBe(400);
    const { init } = await deliveryRequest(await repo.commit('isolates-staging', 'staging'));
    expect((await client(one).request('/webhooks/github', init)).status).toBe(200);
    expect((await exchange(two, 'staging')).status).toBe(200);
    expect((await exchange(two, 'production')).status).toBe(400);
    // A third isolate started after the push serves it too, not its bundle.
    const three = await createWorkerBroker(env, files, { log: silentLogger });
    expect((await exchange(three, 'staging')).status).toBe(200);
  });
});
