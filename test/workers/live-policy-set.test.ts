import { createExecutionContext, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { type LogFields, type Logger, silentLogger } from '../../src/core/log.ts';
import { FailureBackoff } from '../../src/runtimes/failure-backoff.ts';
import { loadPolicies, type PolicyFile, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { policyHealth } from '../../src/core/policy/policy-health.ts';
import { keywayState, type KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { WorkerLivePolicies } from '../../src/runtimes/workers/live-policies.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { ownStateNamespace, watchedNamespace, workerEnv } from './workers-harness.ts';

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

/** A broker following a policy repository, asking `states` which set is live before every request: its POST /token, bodiless. */
async function followingBroker(states: DurableObjectNamespace<KeywayState>, log: Logger, now: () => number): Promise<() => Response | Promise<Response>> {
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
  const broker = await createWorkerBroker(env, [], { log, now });
  return () =>
    broker.app.fetch(
      new Request(`${workerEnv.KEYWAY_ISSUER}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=urn:ietf:params:oauth:grant-type:token-exchange',
      }),
      env,
      createExecutionContext(),
    );
}

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
    let clock = Date.now();
    const token = await followingBroker(states, silentLogger, () => clock);
    down = true;
    const refused = await token();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(await refused.json()).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'which policy set is live cannot be checked right now; retry later',
    });
    down = false;
    // Asked again once the failed check's backoff has passed.
    clock += FailureBackoff.FIRST_MS;
    const answered = await token();
    expect(answered.status).toBe(400);
    expect(await answered.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('asks it again only once its growing backoff has passed, answering 503 with Retry-After meanwhile, and serves once it answers', async () => {
    const own = ownStateNamespace();
    const state = watchedNamespace(own);
    const failures: LogFields[] = [];
    const log = {
      ...silentLogger,
      error: (message: string, fields: LogFields = {}) => void (message === 'live policy set could not be checked' && failures.push(fields)),
    };
    const start = Date.now();
    let clock = start;
    const token = await followingBroker(state.namespace, log, () => clock);
    const checks = () => state.calls.filter((method) => method === 'livePolicyState').length;
    const refusedAt = async (at: number) => {
      clock = at;
      const response = await token();
      expect([response.status, response.headers.get('cache-control')]).toEqual([503, 'no-store']);
      expect(await response.json()).toEqual({
        error: 'temporarily_unavailable',
        error_description: 'which policy set is live cannot be checked right now; retry later',
      });
      return response.headers.get('retry-after');
    };
    // The live set unreadable in KeywayState (its table renamed away), or readable again.
    const liveSetReadable = (readable: boolean) =>
      runInDurableObject(keywayState(own), (_instance, durable) => {
        durable.storage.sql.exec(
          readable ? 'ALTER TABLE live_policy_set_away RENAME TO live_policy_set' : 'ALTER TABLE live_policy_set RENAME TO live_policy_set_away',
        );
      });

    await liveSetReadable(false);
    // One check, which fails.
    expect(await refusedAt(start)).toBe('1');
    expect(checks()).toBe(1);
    expect(failures).toEqual([expect.objectContaining({ failures: 1, retry_in_ms: 1000, error: expect.stringContaining('live_policy_set') })]);

    // Within the backoff: not asked again, whatever the traffic.
    for (let request = 0; request < 20; request += 1) expect(await refusedAt(start + 400)).toBe('1');
    expect([checks(), failures.length]).toEqual([1, 1]);

    // Past it: the requests that arrive together ask once each, and their failure counts once, doubling the wait.
    clock = start + 1000;
    const together = await Promise.all([token(), token(), token()]);
    expect(together.map((response) => [response.status, response.headers.get('retry-after')])).toEqual([
      [503, '2'],
      [503, '2'],
      [503, '2'],
    ]);
    expect(failures).toHaveLength(2);
    expect(failures[1]).toMatchObject({ failures: 2, retry_in_ms: 2000 });
    const asked = checks();

    // Readable again: not asked before the backoff has passed; then the set is checked and requests are served.
    await liveSetReadable(true);
    expect(await refusedAt(start + 2900)).toBe('1');
    expect(checks()).toBe(asked);
    clock = start + 3000;
    const answered = await token();
    expect(answered.status).toBe(400);
    expect(await answered.json()).toMatchObject({ error: 'invalid_request' });
    expect([checks(), failures.length]).toEqual([asked + 1, 2]);

    // The count set back: the next failure waits the first wait again.
    await liveSetReadable(false);
    expect(await refusedAt(start + 3000)).toBe('1');
    expect(failures[2]).toMatchObject({ failures: 1, retry_in_ms: 1000 });
  });
});

describe('a Worker whose broker is mounted behind its own middleware (a policy repository, a restore)', () => {
  const following = {
    KEYWAY_GITHUB_WEBHOOK_SECRET: 'a-webhook-secret-of-enough-chars',
    KEYWAY_GITHUB_POLICY_REPOSITORY: 'org/policies',
    KEYWAY_GITHUB_POLICY_REPOSITORY_ID: '1',
  };
  const restoring = { KEYWAY_RESTORE_TOKEN: 'a'.repeat(64) };
  it.each([
    ['following a policy repository', following, '/v1/no-such-route'],
    ['in restore mode', restoring, '/v1/backup/restore'],
  ])('answers a request no route serves %s as the broker does: JSON not_found, not plain text', async (_, settings, path) => {
    const env = {
      ...workerEnv,
      ...settings,
      STATE: ownStateNamespace(),
      AUDIT: ownStateNamespace(workerEnv.AUDIT),
      LIMITS: ownStateNamespace(workerEnv.LIMITS),
    };
    const broker = await createWorkerBroker(env, [], { log: silentLogger });
    const response = await broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`), env, createExecutionContext());
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ error: 'not_found' });
  });
});
