import { createExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import type { LogFields } from '../../src/core/log.ts';
import type { RateLimiter } from '../../src/core/limits/rate-limiter.ts';
import type { RateLimit } from '../../src/core/limits/token-bucket.ts';
import { type BudgetPick, RATE_LIMIT_SHARDS, rateLimitShards, sharedBudgets } from '../../src/runtimes/workers/rate-limit-state.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { limitsSuite } from '../suites/limits-suite.ts';
import { repositoryPolicyShareSuite } from '../suites/repository-policy-share-suite.ts';
import { exchangeForm, freshIssuer, postToken, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { limitsOnClock, startWorkersHarness, workerEnv } from './workers-harness.ts';

limitsSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'), workerEnv.KEYWAY_ISSUER);
repositoryPolicyShareSuite('Workers (RateLimitState objects)', (now) => rateLimitShards(limitsOnClock(workerEnv.LIMITS, now)));

describe('rate limits on Workers when the limiter cannot be reached', () => {
  it('lets the request through and logs it: a limit sheds load, it does not decide who gets a token', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'limits-down');
    const files = Object.entries(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'limits-down-oidc'))).map(([path, text]) => ({ path, text }));
    const logged: { message: string; fields: LogFields }[] = [];
    const keep = (message: string, fields: LogFields = {}) => void logged.push({ message, fields });
    // One token per identity: the second exchange is refused while the limiter answers.
    const tight = { ...workerEnv, KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '1' };
    const twice = async (env: WorkerEnv) => {
      const broker = await createWorkerBroker(env, files, { log: { info: keep, warn: keep, error: keep } });
      const request = async (path: string, init?: RequestInit) => {
        const sent = new Request(`${env.KEYWAY_ISSUER}${path}`, init);
        sent.headers.set('cf-connecting-ip', '203.0.113.7');
        return broker.app.fetch(sent, env, createExecutionContext());
      };
      const client = { issuer: env.KEYWAY_ISSUER, request };
      const exchange = async () => postToken(client, exchangeForm(await github.sign(ciClaims(github.url, env.KEYWAY_ISSUER))));
      return [await exchange(), await exchange()];
    };
    expect((await twice(tight)).map((answer) => answer.status)).toEqual([200, 429]);
    expect(logged.filter((line) => line.message.startsWith('rate limiter'))).toEqual([]);

    // The limiter's binding names objects that do not hold buckets: every call to it fails, as one that cannot be reached does.
    const unreachable = { ...tight, LIMITS: workerEnv.REPLAY as unknown as WorkerEnv['LIMITS'] };
    const answers = await twice(unreachable);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    for (const answer of answers) expect(answer.body['access_token']).toBeTypeOf('string');
    const failures = logged.filter((line) => line.message === 'rate limiter unavailable; request let through');
    // Each exchange asks the client, global and subject limits.
    expect(failures.map((line) => line.fields['limit'])).toEqual(['client', 'global', 'subject', 'client', 'global', 'subject']);
    expect(failures.every((line) => typeof line.fields['error'] === 'string')).toBe(true);
  });
});

describe('the rate-limit objects on Workers', () => {
  it("refill a bucket by the object's own clock: a caller's time, ahead or reaching it out of order, lets nothing more through", async () => {
    const limiter = rateLimitShards(workerEnv.LIMITS);
    const limit: RateLimit = { name: `client-${crypto.randomUUID()}`, perMinute: 60, burst: 2 };
    const now = Date.now();
    const take = async (at: number) => (await limiter.take(limit, '203.0.113.7/32', at)).allowed;
    expect([await take(now), await take(now), await take(now)]).toEqual([true, true, false]);
    // An isolate whose clock is an hour ahead, or whose time was read long before its call arrived: no refill comes of either.
    expect(await take(now + 3_600_000)).toBe(false);
    const outOfOrder = [];
    for (let pair = 0; pair < 5; pair += 1) outOfOrder.push(await take(now - 60_000), await take(now));
    expect(outOfOrder).toEqual(Array(10).fill(false));
    // The shared (global) budgets alike.
    const global: RateLimit = { name: `global-${crypto.randomUUID()}`, perMinute: 60, burst: 1 };
    const shared = async (at: number) => (await limiter.takeShared(global, at)).allowed;
    expect([await shared(now), await shared(now), await shared(now + 3_600_000)]).toEqual([true, false, false]);
  });
});

describe('the global rate limit on Workers', () => {
  // A name of its own per limit: it names the limit's objects, so no other test's bucket is drawn from.
  const globalLimit = (perMinute: number, burst: number): RateLimit => ({ name: `global-${crypto.randomUUID()}`, perMinute, burst });
  /** The objects' clock held where the test puts it: a flood arrives at one instant, however long the test takes to send it. */
  let clock = Date.now();
  const onHeldClock = (pick?: BudgetPick) =>
    rateLimitShards(
      limitsOnClock(workerEnv.LIMITS, () => clock),
      pick,
    );
  const admitted = async (limiter: RateLimiter, limit: RateLimit, requests: number) => {
    let count = 0;
    for (let request = 0; request < requests; request += 1) if ((await limiter.takeShared(limit, clock)).allowed) count += 1;
    return count;
  };

  it('is split into budgets in objects of their own that sum exactly to the configured rate and burst', async () => {
    const limit = globalLimit(16_000, 1_600);
    const budgets = sharedBudgets(limit);
    expect(budgets).toHaveLength(RATE_LIMIT_SHARDS);
    expect(budgets.reduce((sum, budget) => sum + budget.burst, 0)).toBe(limit.burst);
    expect(budgets.reduce((sum, budget) => sum + budget.perMinute, 0)).toBe(limit.perMinute);
    // Every request drawn from budget 0: it holds its share of the burst only, and budget 1 is untouched by it.
    expect(
      await admitted(
        onHeldClock(() => 0),
        limit,
        150,
      ),
    ).toBe(100);
    expect(
      await admitted(
        onHeldClock(() => 1),
        limit,
        1,
      ),
    ).toBe(1);
    // Spread over every budget: together they let exactly the configured burst through, and not one more.
    let next = 0;
    const roundRobin = onHeldClock((count) => next++ % count);
    const second = globalLimit(16_000, 1_600);
    expect(await admitted(roundRobin, second, 1_700)).toBe(1_600);
    // A minute later each budget refilled its share of the rate, capped at its share of the burst.
    clock += 60_000;
    expect(await admitted(roundRobin, second, 1_700)).toBe(1_600);
  });

  it('stays one exact bucket when the limit is too small to split', async () => {
    const limit = globalLimit(3, 2);
    expect(sharedBudgets(limit)).toEqual([limit]);
    let next = 0;
    expect(
      await admitted(
        onHeldClock((count) => next++ % count),
        limit,
        5,
      ),
    ).toBe(2);
  });

  it('draws each request from one budget picked at random, never above the configured burst', async () => {
    const limit = globalLimit(16_000, 1_600);
    // Under a flood a request may find its budget empty while another still holds tokens: a few percent fewer pass, never more.
    const passed = await admitted(onHeldClock(), limit, 2_000);
    expect(passed).toBeLessThanOrEqual(1_600);
    expect(passed).toBeGreaterThan(1_400);
  });
});
