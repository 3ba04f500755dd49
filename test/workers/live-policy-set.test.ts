import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { loadPolicies, type PolicyFile, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { policyHealth } from '../../src/core/policy/policy-health.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { WorkerLivePolicies } from '../../src/runtimes/workers/live-policies.ts';
import { ownStateNamespace } from './workers-harness.ts';

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
