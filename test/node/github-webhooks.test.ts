import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { githubWebhookSuite, policyRepositoryOnFakeGitHub } from '../suites/github-webhook-suite.ts';
import { deliveryRequest } from '../support/github-webhook-delivery.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { BROKER_ISSUER, startNodeHarness, testConfig, writeTree } from './node-harness.ts';

githubWebhookSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

describe('the live policy set on Node', () => {
  it('survives a restart: the set pushed last serves again, not the policy directory', async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'restart');
    const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
    const root = writeTree(Object.fromEntries(Object.entries(repo.initialPolicies).map(([path, text]) => [`policies/${path}`, text])));
    const { github, githubWebhooks } = readBrokerSettings({ ...repo.settings, KEYWAY_ISSUER: BROKER_ISSUER });
    const config = testConfig(root, { ...(github === undefined ? {} : { github }), ...(githubWebhooks === undefined ? {} : { githubWebhooks }) });
    const exchange = async (url: string, environment: string) =>
      postToken(
        { issuer: BROKER_ISSUER, request: (path, init) => fetch(`${url}${path}`, init) },
        exchangeForm(await ci.sign(ciClaims(ci.url, BROKER_ISSUER, { environment }))),
      );

    const first = await startNodeBroker(config, { log: silentLogger });
    try {
      const { init } = await deliveryRequest(await repo.commit('restart-qa', 'qa'));
      expect((await fetch(`${first.url}/webhooks/github`, init)).status).toBe(200);
      expect((await exchange(first.url, 'qa')).status).toBe(200);
    } finally {
      await first.close();
    }
    const second = await startNodeBroker(config, { log: silentLogger });
    try {
      expect((await exchange(second.url, 'qa')).status).toBe(200);
      expect((await exchange(second.url, 'production')).status).toBe(400);
      // A reload (SIGHUP, a file change) reloads the pushed set too, not the directory.
      expect(second.reloadPolicies()).toMatchObject({ ok: true });
      expect((await exchange(second.url, 'qa')).status).toBe(200);
    } finally {
      await second.close();
    }
  });
});
