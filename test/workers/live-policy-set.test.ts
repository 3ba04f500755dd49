import { createExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { loadPolicies, type PolicyFile, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { policyHealth } from '../../src/core/policy/policy-health.ts';
import { keywayState, type KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { WorkerLivePolicies } from '../../src/runtimes/workers/live-policies.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { ownStateNamespace, workerEnv } from './workers-harness.ts';

const policy = (path: string, sub: string, ttl: string): PolicyFile => ({
  path,
  text: `version: 1\nissuer: "https://ci.example"\nmatch: { sub: "${sub}" }\ngrant: { audience: https://a.example, ttl: ${ttl} }\n`,
});
const PUSHED_WITH: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 7200, allowHttpLoopback: true };
/** The push that narrowed access: main only, for two hours (as the cap was then). */
const MAIN_ONLY = [policy('main-only.yaml', 'repo:org/app:ref:refs/heads/main', '2h')];
/** What the Worker bundles: every branch. */
const ANY_BRANCH = [policy('any-branch.yaml', 'repo:org/app:*', '1h')];

const isolate = (state: () => ReturnType<typeof keywayState>, options: PolicyLoadOptions) =>
  new WorkerLivePolicies(state, loadPolicies(ANY_BRANCH, options), options, silentLogger, Date.now, 0);
const served = (live: WorkerLivePolicies) => live.current.policies.map((entry) => entry.id);

describe('a Worker isolate whose stored live policy set does not load', () => {
  it('serves no policy, not the broader bundled set, and says so in health, as a Node broker does not start', async () => {
    const ns = ownStateNamespace();
    const state = () => keywayState(ns);
    await state().saveLivePolicySet(MAIN_ONLY, 'github push abc', Date.now());
    await state().recordPolicySwitch({ ok: true, at: new Date().toISOString(), policies: 1, source: 'github push abc' });

    // A new deployment with a lower KEYWAY_MAX_TTL_SECONDS: its isolates cannot load the 2h grant.
    const live = isolate(state, { ...PUSHED_WITH, maxTtlSeconds: 3600 });
    expect(served(live)).toEqual(['any-branch']);
    await live.refreshIfStale();
    expect(served(live)).toEqual([]);
    const health = policyHealth(live.current, live.lastSwitch);
    expect(health).toMatchObject({ status: 'degraded', policies: 0, policy_reload: { ok: false, source: 'stored live policy set' } });
    expect(JSON.stringify(health.policy_reload)).toMatch(/does not load with this Worker's settings or version: no policy serves/);

    // A push this Worker loads serves again.
    await live.live.adopt([policy('main-only.yaml', 'repo:org/app:ref:refs/heads/main', '1h')], 'github push def');
    expect(served(live)).toEqual(['main-only']);
    expect(policyHealth(live.current, live.lastSwitch).status).toBe('ok');
  });

  it("drops the set it served before when another version's isolate saved one it cannot load: that push may have withdrawn access", async () => {
    const ns = ownStateNamespace();
    const state = () => keywayState(ns);
    const live = isolate(state, PUSHED_WITH);
    await live.live.adopt(ANY_BRANCH, 'github push old');
    expect(served(live)).toEqual(['any-branch']);
    // Saved by an isolate whose loader takes what this one refuses (here: a TTL over this isolate's cap).
    await state().saveLivePolicySet([policy('main-only.yaml', 'repo:org/app:ref:refs/heads/main', '3h')], 'github push new', Date.now());
    await live.refreshIfStale();
    expect(served(live)).toEqual([]);
    expect(policyHealth(live.current, live.lastSwitch).status).toBe('degraded');
  });
});

describe('a Worker following a policy repository while KeywayState cannot say which set is live', () => {
  it('answers every request with the JSON 503 temporarily_unavailable, not a bare 500, and serves again once it can', async () => {
    const real = ownStateNamespace();
    let down = false;
    // KeywayState's live-set check fails (overloaded, reset), as a Durable Object call can.
    const states = {
      ...real,
      get: (id: DurableObjectId) =>
        new Proxy(real.get(id), {
          get: (target, name) =>
            down && name === 'livePolicyState' ? () => Promise.reject(new Error('Durable Object is overloaded')) : Reflect.get(target, name),
        }),
    } as DurableObjectNamespace<KeywayState>;
    const env = {
      ...workerEnv,
      STATE: states,
      AUDIT: ownStateNamespace(workerEnv.AUDIT),
      LIMITS: ownStateNamespace(workerEnv.LIMITS),
      KEYWAY_GITHUB_WEBHOOK_SECRET: 'a-webhook-secret-of-enough-chars',
      KEYWAY_GITHUB_POLICY_REPOSITORY: 'org/policies',
      KEYWAY_GITHUB_POLICY_REPOSITORY_ID: '1',
      KEYWAY_GITHUB_POLICY_CHECK_SECONDS: '0',
    };
    const broker = await createWorkerBroker(env, [], { log: silentLogger });
    const token = () =>
      broker.app.fetch(
        new Request(`${workerEnv.KEYWAY_ISSUER}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=urn:ietf:params:oauth:grant-type:token-exchange',
        }),
        env,
        createExecutionContext(),
      );
    down = true;
    const refused = await token();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(await refused.json()).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'which policy set is live cannot be checked right now; retry later',
    });
    down = false;
    const answered = await token();
    expect(answered.status).toBe(400);
    expect(await answered.json()).toMatchObject({ error: 'invalid_request' });
  });
});
