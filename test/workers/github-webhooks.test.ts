import { createExecutionContext, runInDurableObject } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger, type LogFields, type Logger } from '../../src/core/log.ts';
import { durableObjectSql } from '../../src/runtimes/workers/durable-object-sql.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { githubWebhookSuite, policyRepositoryOnFakeGitHub } from '../suites/github-webhook-suite.ts';
import { deliveryRequest } from '../support/github-webhook-delivery.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { ownStateNamespace, startWorkersHarness, watchedNamespace, workerEnv } from './workers-harness.ts';

githubWebhookSuite(
  'Workers',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

/** The short staleness bound these tests set (KEYWAY_GITHUB_POLICY_CHECK_SECONDS), and the slack allowed past it for the requests in between. */
const CHECK_SECONDS = 1;
const SLACK_MS = 2_000;

/** Polls `attempt` (every 50 ms) until it holds; fails once the bound and its slack have passed since `since`. */
async function withinBound(since: number, attempt: () => Promise<boolean>): Promise<void> {
  const deadline = since + CHECK_SECONDS * 1000 + SLACK_MS;
  while (!(await attempt())) {
    if (Date.now() > deadline) throw new Error(`not within ${CHECK_SECONDS} s (+${SLACK_MS} ms) of the switch`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Two isolates of one deployment with a policy repository on the fake GitHub: each builds its own broker from the bundle,
 * as runtimes/workers/main.ts does, over one state object of their own; pushes are delivered to the first.
 */
async function twoIsolates(name: string) {
  const ci = freshIssuer(inject('testIssuerBase'), name);
  const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
  const env = { ...workerEnv, ...repo.settings, STATE: ownStateNamespace(), KEYWAY_GITHUB_POLICY_CHECK_SECONDS: String(CHECK_SECONDS) };
  const files = Object.entries(repo.initialPolicies).map(([path, text]) => ({ path, text }));
  const [one, two] = await Promise.all([createWorkerBroker(env, files, { log: silentLogger }), createWorkerBroker(env, files, { log: silentLogger })]);
  const client = (broker: typeof one) => ({
    issuer: workerEnv.KEYWAY_ISSUER,
    request: async (path: string, init?: RequestInit) =>
      broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), env, createExecutionContext()),
  });
  const exchange = async (broker: typeof one, environment: string) =>
    postToken(client(broker), exchangeForm(await ci.sign(ciClaims(ci.url, workerEnv.KEYWAY_ISSUER, { environment }))));
  /** Delivers a push of a commit allowing `environment`; resolves to when it was answered. */
  const push = async (label: string, environment: string) => {
    const { init } = await deliveryRequest(await repo.commit(label, environment));
    expect((await client(one).request('/webhooks/github', init)).status).toBe(200);
    return Date.now();
  };
  return { env, files, one, two, exchange, push };
}

describe('the live policy set on Workers', () => {
  it('reaches an isolate that never saw the push within KEYWAY_GITHUB_POLICY_CHECK_SECONDS: a replaced set stops granting', async () => {
    const { env, files, one, two, exchange, push } = await twoIsolates('isolates');

    expect((await exchange(two, 'staging')).status).toBe(400);
    const stagingPushed = await push('isolates-staging', 'staging');
    // The isolate that switched serves the new set at once; the other within the bound.
    expect((await exchange(one, 'staging')).status).toBe(200);
    await withinBound(stagingPushed, async () => (await exchange(two, 'staging')).status === 200);
    expect((await exchange(two, 'production')).status).toBe(400);

    const qaPushed = await push('isolates-qa', 'qa');
    await withinBound(qaPushed, async () => (await exchange(two, 'staging')).status !== 200);
    const refused = await exchange(two, 'staging');
    expect(refused.status).toBe(400);
    expect(refused.body).not.toHaveProperty('access_token');
    expect(await two.audit.log.get(refused.body['audit_event_id'] as string)).toMatchObject({ reason: 'no_policy_matched' });
    expect((await exchange(two, 'qa')).status).toBe(200);
    // A third isolate started after the push serves it too, not its bundle.
    const three = await createWorkerBroker(env, files, { log: silentLogger });
    expect((await exchange(three, 'qa')).status).toBe(200);
  });

  it('is asked of the state object at most once per KEYWAY_GITHUB_POLICY_CHECK_SECONDS, not on every request', async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'isolates-calls');
    const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
    // The real state objects, with each call on them noted on its way.
    const state = watchedNamespace(ownStateNamespace());
    const env = { ...workerEnv, ...repo.settings, STATE: state.namespace, KEYWAY_GITHUB_POLICY_CHECK_SECONDS: '60' };
    const files = Object.entries(repo.initialPolicies).map(([path, text]) => ({ path, text }));
    const broker = await createWorkerBroker(env, files, { log: silentLogger });
    const request = async (path: string, init?: RequestInit) =>
      broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), env, createExecutionContext());
    const client = { issuer: workerEnv.KEYWAY_ISSUER, request };
    expect((await request('/healthz')).status).toBe(200);
    expect((await request('/.well-known/jwks.json')).status).toBe(200);
    for (let round = 0; round < 3; round += 1) {
      expect((await postToken(client, exchangeForm(await ci.sign(ciClaims(ci.url, workerEnv.KEYWAY_ISSUER, { environment: 'production' }))))).status).toBe(200);
    }
    expect(state.calls.filter((method) => method === 'livePolicyState')).toHaveLength(1);
  });

  // Point-in-time recovery of the state object to before a push, then a push: the new set has the version the isolate holds.
  it('reaches an isolate when the state object is recovered to before its set and the next push reuses its version', async () => {
    const { env, two, exchange, push } = await twoIsolates('isolates-recovered');
    const grants = async (broker: typeof two, environment: string) => (await exchange(broker, environment)).status === 200;
    const storedVersion = () =>
      runInDurableObject(keywayState(env.STATE), async (_instance, state) =>
        durableObjectSql(state.storage).all<{ version: number }>('SELECT version FROM live_policy_set'),
      );

    await withinBound(await push('recovered-qa', 'qa'), () => grants(two, 'qa'));
    expect(await storedVersion()).toEqual([{ version: 1 }]);
    // Recovered to before that push: no set is stored, and an isolate serves its bundle, as a new one would.
    await runInDurableObject(keywayState(env.STATE), async (_instance, state) => void durableObjectSql(state.storage).run('DELETE FROM live_policy_set'));
    const recovered = Date.now();
    await withinBound(recovered, async () => !(await grants(two, 'qa')));
    expect(await grants(two, 'production')).toBe(true);
    // The next push is version 1 again, with other files: the isolate that served the first version 1 takes it.
    const stagingPushed = await push('recovered-staging', 'staging');
    expect(await storedVersion()).toEqual([{ version: 1 }]);
    await withinBound(stagingPushed, () => grants(two, 'staging'));
    expect(await grants(two, 'qa')).toBe(false);
  });

  // Whoever can write the state (an edited export restored by hand, say) but not the master key must not choose what is allowed.
  it('is not served when the master key did not attest it: the bundled policies serve, health is degraded, the log says why', async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'planted');
    const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
    const env = { ...workerEnv, ...repo.settings, STATE: ownStateNamespace(), KEYWAY_GITHUB_POLICY_CHECK_SECONDS: String(CHECK_SECONDS) };
    const files = Object.entries(repo.initialPolicies).map(([path, text]) => ({ path, text }));
    const errors: { message: string; fields: LogFields | undefined }[] = [];
    const log: Logger = { ...silentLogger, error: (message, fields) => errors.push({ message, fields }) };
    const client = (broker: Awaited<ReturnType<typeof createWorkerBroker>>) => ({
      issuer: workerEnv.KEYWAY_ISSUER,
      request: async (path: string, init?: RequestInit) =>
        broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), env, createExecutionContext()),
    });
    const exchange = async (broker: Awaited<ReturnType<typeof createWorkerBroker>>, environment: string) =>
      postToken(client(broker), exchangeForm(await ci.sign(ciClaims(ci.url, workerEnv.KEYWAY_ISSUER, { environment }))));

    const one = await createWorkerBroker(env, files, { log: silentLogger });
    const { init } = await deliveryRequest(await repo.commit('planted-qa', 'qa'));
    expect((await client(one).request('/webhooks/github', init)).status).toBe(200);
    expect((await exchange(one, 'qa')).status).toBe(200);
    // The stored set now allows staging, under the attestation of the set it replaced.
    await runInDurableObject(keywayState(env.STATE), async (_instance, state) => {
      const db = durableObjectSql(state.storage);
      const [row] = db.all<{ files: string }>('SELECT files FROM live_policy_set');
      db.run('UPDATE live_policy_set SET files = ?, version = version + 1', [row!.files.replaceAll('environment: qa', 'environment: staging')]);
    });
    const edited = Date.now();

    const two = await createWorkerBroker(env, files, { log });
    const staging = await exchange(two, 'staging');
    expect(staging.status).toBe(400);
    expect(staging.body).toMatchObject({ error: 'invalid_request' });
    expect(staging.body).not.toHaveProperty('access_token');
    expect((await exchange(two, 'qa')).status).toBe(400);
    expect((await exchange(two, 'production')).status).toBe(200);
    expect(await (await client(two).request('/healthz')).json()).toEqual({ status: 'degraded' });
    expect(errors).toContainEqual({
      message: 'stored live policy set not served: the master key does not vouch for it',
      fields: { problems: [expect.stringContaining('is not vouched for by the master key')] },
    });
    // The isolate that served the set before the edit drops it too, within the bound.
    await withinBound(edited, async () => (await exchange(one, 'qa')).status !== 200);
    expect((await exchange(one, 'staging')).status).toBe(400);
    expect((await exchange(one, 'qa')).status).toBe(400);
  });
});
