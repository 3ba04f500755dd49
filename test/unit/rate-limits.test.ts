import { describe, expect, it } from 'vitest';
import type { AuditEventDraft } from '../../src/core/audit/audit-event.ts';
import type { CallerAccount } from '../../src/core/claims/caller-account.ts';
import { readLimitSettings, type LimitSettings } from '../../src/core/limits/limit-settings.ts';
import { MemoryRateLimiter } from '../../src/core/limits/memory-rate-limiter.ts';
import { RateLimitedError } from '../../src/core/limits/rate-limited-error.ts';
import { requestLimits } from '../../src/core/limits/request-limits.ts';
import { recordAsLimited, spendsPastUnverifiedBudget } from '../../src/core/limits/unverified-record-budget.ts';
import { returnToken, takeToken, type Bucket, type RateLimit } from '../../src/core/limits/token-bucket.ts';
import { silentLogger } from '../../src/core/log.ts';
import { readKeySettings } from '../../src/core/mint/key-life-cycle.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { repositoryPolicyShareSuite } from '../suites/repository-policy-share-suite.ts';

const limit: RateLimit = { name: 'subject', perMinute: 60, burst: 3 };

describe('the token bucket', () => {
  it('lets a burst through, then one per refill interval, and says how long to wait', () => {
    let bucket: Bucket | undefined;
    const take = (now: number) => {
      const step = takeToken(limit, bucket, now);
      bucket = step.bucket;
      return step.verdict;
    };
    expect([take(0), take(0), take(0)].every((verdict) => verdict.allowed)).toBe(true);
    expect(take(0)).toEqual({ allowed: false, retryAfterSeconds: 1, refused: 1 });
    expect(take(400)).toEqual({ allowed: false, retryAfterSeconds: 1, refused: 2 });
    // Letting one through ends the run of refusals, and says how long it was.
    expect(take(1000)).toEqual({ allowed: true, endsRun: 2 });
    expect(take(1000)).toMatchObject({ allowed: false, refused: 1 });
    // Idle long enough, it holds its burst again, never more.
    expect([take(60_000), take(60_000), take(60_000), take(60_000)].map((verdict) => verdict.allowed)).toEqual([true, true, true, false]);
  });

  it('rounds Retry-After up to whole seconds and refills nothing when the clock runs backwards', () => {
    const slow: RateLimit = { name: 'global', perMinute: 7, burst: 1 };
    const spent = takeToken(slow, undefined, 10_000).bucket;
    expect(takeToken(slow, spent, 10_000).verdict).toMatchObject({ retryAfterSeconds: 9 });
    expect(takeToken(slow, spent, 0).verdict).toMatchObject({ allowed: false, retryAfterSeconds: 9 });
  });

  it('refills each span of time once, however the clock steps back and forth (a clock stepped back, callers whose times arrive out of order)', () => {
    const slow: RateLimit = { name: 'client', perMinute: 1, burst: 1 };
    let bucket: Bucket | undefined;
    const take = (now: number) => {
      const step = takeToken(slow, bucket, now);
      bucket = step.bucket;
      return step.verdict.allowed;
    };
    expect(take(60_000)).toBe(true);
    // A minute back and forth again: the minute up to 60 s was refilled already, so nothing is let through.
    expect([take(0), take(60_000), take(0), take(60_000)]).toEqual([false, false, false, false]);
    expect([take(120_000), take(120_000)]).toEqual([true, false]);
  });

  it('refills at its rate again after the clock is set back by more than the bucket takes to fill, not only once the clock is back', () => {
    // The default global limit: it fills in 2 s.
    const global: RateLimit = { name: 'global', perMinute: 60_000, burst: 2_000 };
    const hour = 3_600_000;
    let bucket: Bucket | undefined;
    const take = (now: number) => {
      const step = takeToken(global, bucket, now);
      bucket = step.bucket;
      return step.verdict.allowed;
    };
    // Drained at a clock an hour ahead, which NTP then sets back.
    for (let taken = 0; taken < 2_000; taken += 1) expect(take(hour)).toBe(true);
    expect(take(hour)).toBe(false);
    expect(take(0)).toBe(false);
    // A second on, a second's tokens: the hour until the clock is back does not pass without any.
    expect(take(1_000)).toBe(true);
    expect(Array.from({ length: 1_000 }, () => take(1_000)).filter(Boolean)).toHaveLength(999);
  });
});

describe('a token given back', () => {
  const take = (bucket: Bucket | undefined, now: number) => takeToken(limit, bucket, now);

  it('keeps what the bucket refilled since it was last touched, and never fills it past its burst', () => {
    let bucket = take(take(take(undefined, 0).bucket, 0).bucket, 0).bucket;
    // A second on, one token refilled and one given back: two requests go through, not a third.
    bucket = returnToken(limit, bucket, 1_000);
    const second = take(bucket, 1_000);
    const third = take(second.bucket, 1_000);
    expect([second.verdict.allowed, third.verdict.allowed, take(third.bucket, 1_000).verdict.allowed]).toEqual([true, true, false]);
    // Idle a minute and given a token back, it holds its burst, not one more.
    let idle = returnToken(limit, take(undefined, 0).bucket, 60_000);
    const allowed = Array.from({ length: limit.burst + 1 }, () => {
      const step = take(idle, 60_000);
      idle = step.bucket;
      return step.verdict.allowed;
    });
    expect(allowed).toEqual([true, true, true, false]);
  });

  it('does not end the run of refusals, which the next request let through reports', () => {
    const drained = take(take(take(undefined, 0).bucket, 0).bucket, 0).bucket;
    const refusedTwice = take(take(drained, 0).bucket, 0).bucket;
    expect(take(returnToken(limit, refusedTwice, 0), 0).verdict).toEqual({ allowed: true, endsRun: 2 });
  });
});

describe('the in-memory limiter', () => {
  it('keeps at most its bound of buckets, forgetting full ones before a drained one', async () => {
    const limiter = new MemoryRateLimiter(10);
    const tight: RateLimit = { name: 'client', perMinute: 1, burst: 1 };
    expect(await limiter.take(tight, 'attacker', 0)).toEqual({ allowed: true });
    for (let index = 0; index < 100; index += 1) await limiter.take(tight, `spoofed-${index}`, 0);
    expect(limiter.size).toBeLessThanOrEqual(10);
    // Every bucket was drained, so the least recently used went first; a fresh key is full again.
    expect(await limiter.take(tight, 'spoofed-99', 0)).toMatchObject({ allowed: false });
    const limiterWithFull = new MemoryRateLimiter(10);
    expect(await limiterWithFull.take(tight, 'drained', 0)).toEqual({ allowed: true });
    // These refill within a millisecond: full again by the time the next one arrives.
    for (let index = 0; index < 100; index += 1) await limiterWithFull.take({ ...tight, perMinute: 6_000_000 }, `full-${index}`, index + 1);
    expect(await limiterWithFull.take(tight, 'drained', 101)).toMatchObject({ allowed: false });
  });

  it('forgets the least recently used drained bucket, not the first made, and no more buckets than it must', async () => {
    const limiter = new MemoryRateLimiter(10);
    const tight: RateLimit = { name: 'client', perMinute: 1, burst: 1 };
    await limiter.take(tight, 'busy', 0);
    for (let index = 0; index < 9; index += 1) await limiter.take(tight, `idle-${index}`, 0);
    // Used again, busy is the most recent; the next new key makes room by forgetting idle-0 alone.
    expect(await limiter.take(tight, 'busy', 0)).toMatchObject({ allowed: false });
    await limiter.take(tight, 'new', 0);
    expect(limiter.size).toBe(10);
    expect(await limiter.take(tight, 'busy', 0)).toMatchObject({ allowed: false });
    expect(await limiter.take(tight, 'idle-1', 0)).toMatchObject({ allowed: false });
  });

  it('counts a bucket refilled to exactly its burst as full, and forgets it before a drained one', async () => {
    const limiter = new MemoryRateLimiter(10);
    const tight: RateLimit = { name: 'client', perMinute: 1, burst: 1 };
    await limiter.take(tight, 'drained', 0);
    // One token a second: a second later each holds exactly its one token again.
    for (let index = 0; index < 9; index += 1) await limiter.take({ ...tight, perMinute: 60 }, `refilled-${index}`, 0);
    await limiter.take(tight, 'new', 1_000);
    expect(await limiter.take(tight, 'drained', 1_000)).toMatchObject({ allowed: false });
  });

  it('gives a token back to a bucket it holds, and makes none for a key it does not', async () => {
    const limiter = new MemoryRateLimiter();
    await limiter.giveBack(limit, 'never-taken', 0);
    expect(await Promise.all(Array.from({ length: limit.burst }, () => limiter.take(limit, 'never-taken', 0)))).toEqual(
      Array.from({ length: limit.burst }, () => ({ allowed: true })),
    );
  });

  it('keeps the buckets of different limits apart', async () => {
    const limiter = new MemoryRateLimiter();
    expect(await limiter.take({ name: 'a', perMinute: 1, burst: 1 }, 'k', 0)).toEqual({ allowed: true });
    expect(await limiter.take({ name: 'b', perMinute: 1, burst: 1 }, 'k', 0)).toEqual({ allowed: true });
    expect(await limiter.take({ name: 'a', perMinute: 1, burst: 1 }, 'k', 0)).toMatchObject({ allowed: false });
    expect(await limiter.takeShared({ name: 'a', perMinute: 1, burst: 1 }, 0)).toEqual({ allowed: true });
    expect(await limiter.takeShared({ name: 'b', perMinute: 1, burst: 1 }, 0)).toEqual({ allowed: true });
    expect(await limiter.takeShared({ name: 'a', perMinute: 1, burst: 1 }, 0)).toMatchObject({ allowed: false });
  });
});

describe('limit settings', () => {
  it('has defaults that never bite a CI fleet, and refuses nonsense', () => {
    expect(readLimitSettings({})).toEqual({
      global: { name: 'global', perMinute: 60_000, burst: 2_000 },
      client: { name: 'client', perMinute: 6_000, burst: 1_000 },
      subject: { name: 'subject', perMinute: 600, burst: 300 },
      repositoryPolicy: { name: 'repository_policy', perMinute: 10, burst: 20 },
      unverified: { name: 'unverified', perMinute: 120, burst: 1_000 },
      tenantRefusals: { name: 'tenant_refusals', perMinute: 120, burst: 1_000 },
    });
    expect(readLimitSettings({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '7' }).tenantRefusals.burst).toBe(7);
    expect(readLimitSettings({ KEYWAY_RATE_LIMIT_REPOSITORY_POLICY_BURST: '3' }).repositoryPolicy.burst).toBe(3);
    expect(readLimitSettings({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '0' }).subject.perMinute).toBe(0);
    expect(() => readLimitSettings({ KEYWAY_RATE_LIMIT_CLIENT_BURST: '0' })).toThrow(ConfigError);
    expect(() => readLimitSettings({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '-1' })).toThrow(ConfigError);
    expect(() => readLimitSettings({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: 'lots' })).toThrow(ConfigError);
  });

  it('refuses a blank limit rather than reading it as 0, which turns the limit off; and a number written as no one writes one', () => {
    // An empty value is unset (the default); a blank one (a space, a line break a template left) was Number(' '), 0.
    expect(readLimitSettings({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '' }).global.perMinute).toBe(60_000);
    for (const value of [' ', '\n', '\t', ' 600', '600 ', '0x10', '1e3', '+5', '5.0']) {
      expect(() => readLimitSettings({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: value }), JSON.stringify(value)).toThrow(
        new ConfigError('KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE must be an integer from 0 to 100000000'),
      );
    }
    // Key rotation's 0 is "only on demand": a blank is refused there too, as every integer setting reads alike.
    expect(() => readKeySettings({ KEYWAY_KEY_ROTATION_DAYS: ' ' })).toThrow(ConfigError);
    // A Worker var written as a TOML number arrives as one.
    expect(readLimitSettings({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: 600 }).global.perMinute).toBe(600);
  });
});

repositoryPolicyShareSuite('Node (in memory)', () => new MemoryRateLimiter());

describe('a record made past a limit in place of a refusal (recordAsLimited)', () => {
  const limits = readLimitSettings({});
  const madePast = (limit: RateLimit) => {
    const event: AuditEventDraft = {
      id: '01M83V0FW99QRH1V620WG8J7T1',
      time: new Date(0).toISOString(),
      request: { id: 'request-1' },
      decision: 'denied',
      reason: 'algorithm_not_allowed',
      detail: 'the token is signed with alg none, which this issuer does not allow',
    };
    recordAsLimited(event, new RateLimitedError(limit, 1, 1));
    return event;
  };

  it('is past the unverified budget only when that limit made it: a verified operator past its subject limit spends no stranger budget', () => {
    expect(spendsPastUnverifiedBudget(madePast(limits.unverified))).toBe(true);
    expect(spendsPastUnverifiedBudget(madePast(limits.subject))).toBe(false);
  });

  it('is not past it for a refusal the unverified limit answered as itself, or a record whose text names the limit without replacing a reason', () => {
    const limited = new RateLimitedError(limits.unverified, 1, 1);
    expect(spendsPastUnverifiedBudget({ reason: 'rate_limited', detail: limited.message })).toBe(false);
    expect(spendsPastUnverifiedBudget({ reason: 'algorithm_not_allowed', detail: `${limited.message}; refused: algorithm_not_allowed` })).toBe(false);
  });
});

describe("the limits' buckets and record budgets (requestLimits over the in-memory limiter)", () => {
  const OFF = { perMinute: 0, burst: 1 } as const;
  /** Each limit off but the ones given, which allow one a minute with a burst of one. */
  const limitsWith = (on: Partial<Record<keyof LimitSettings, RateLimit>>, now: () => number = () => 0, limiter: MemoryRateLimiter = new MemoryRateLimiter()) =>
    requestLimits(
      limiter,
      {
        global: { name: 'global', ...OFF },
        client: { name: 'client', ...OFF },
        subject: { name: 'subject', ...OFF },
        repositoryPolicy: { name: 'repository_policy', ...OFF },
        unverified: { name: 'unverified', ...OFF },
        tenantRefusals: { name: 'tenant_refusals', ...OFF },
        ...on,
      },
      now,
      silentLogger,
    );
  const tight = (name: string): RateLimit => ({ name, perMinute: 1, burst: 1 });
  const github: CallerAccount = { issuer: 'https://token.actions.githubusercontent.com', account: 'tenant 1200934' };
  const gitlab: CallerAccount = { issuer: 'https://gitlab.com', account: 'tenant 1200934' };

  it("keeps one issuer's account apart from another issuer's of the same id: neither spends the other's subject bucket or refusal budget", async () => {
    const limits = limitsWith({ subject: tight('subject'), tenantRefusals: tight('tenant_refusals') });
    expect(await limits.forSubject(github, 'main')).toBeUndefined();
    expect(await limits.forSubject(gitlab, 'main')).toBeUndefined();
    expect((await limits.forSubject(github, 'main'))?.limit).toBe('subject');
    expect(await limits.forTenantRefusalRecord(github)).toEqual({});
    expect(await limits.forTenantRefusalRecord(gitlab)).toEqual({});
    expect((await limits.forTenantRefusalRecord(github)).refusal?.limit).toBe('tenant_refusals');
  });

  it("keeps an account apart from its subject in the subject's bucket: tenant 1's sub 2x is not tenant 12's sub x", async () => {
    const limits = limitsWith({ subject: tight('subject') });
    const issuer = github.issuer;
    expect(await limits.forSubject({ issuer, account: 'tenant 1' }, '2x')).toBeUndefined();
    expect(await limits.forSubject({ issuer, account: 'tenant 12' }, 'x')).toBeUndefined();
  });

  it("spends every audience's bucket a token names, or none of them when one is dry", async () => {
    const limits = limitsWith({ subject: tight('subject') });
    expect(await limits.forSubject(github, 'main', ['"other"'])).toBeUndefined();
    // The broker's audience's bucket is given back when the other audience's refuses the request.
    expect((await limits.forSubject(github, 'main', ['"broker"', '"other"']))?.limit).toBe('subject');
    expect(await limits.forSubject(github, 'main', ['"broker"'])).toBeUndefined();
    expect((await limits.forSubject(github, 'main', ['"broker"']))?.limit).toBe('subject');
  });

  it("keeps a subject apart from its audience in the audience's bucket: sub main1's audience 2 is not sub main's audience 12", async () => {
    const limits = limitsWith({ subject: tight('subject') });
    expect(await limits.forSubject(github, 'main1', ['2'])).toBeUndefined();
    expect(await limits.forSubject(github, 'main', ['12'])).toBeUndefined();
  });

  /** The in-memory limiter, unreachable (as a Durable Object can be) for the buckets of the audiences named, to take or to give back. */
  class PartlyDownLimiter extends MemoryRateLimiter {
    readonly down = { take: new Set<string>(), giveBack: new Set<string>() };
    readonly #check = (to: 'take' | 'giveBack', key: string) => {
      if ([...this.down[to]].some((audience) => key.endsWith(`\n${audience}`))) throw new Error('rate limiter unreachable');
    };
    override async take(limit: RateLimit, key: string, now: number) {
      this.#check('take', key);
      return super.take(limit, key, now);
    }
    override async giveBack(limit: RateLimit, key: string, now: number) {
      this.#check('giveBack', key);
      return super.giveBack(limit, key, now);
    }
  }

  it("answers a dry audience's refusal, never an error, where giving back another audience's token fails", async () => {
    const limiter = new PartlyDownLimiter();
    const limits = limitsWith({ subject: tight('subject') }, () => 0, limiter);
    expect(await limits.forSubject(github, 'main', ['"other"'])).toBeUndefined();
    limiter.down.giveBack.add('"broker"');
    await expect(limits.forSubject(github, 'main', ['"broker"', '"other"'])).resolves.toMatchObject({ limit: 'subject' });
  });

  it("gives back no token to an audience's bucket that could not be asked: a request spends no more than it took", async () => {
    const limiter = new PartlyDownLimiter();
    const limits = limitsWith({ subject: tight('subject') }, () => 0, limiter);
    expect(await limits.forSubject(github, 'main', ['"broker"'])).toBeUndefined();
    expect(await limits.forSubject(github, 'main', ['"other"'])).toBeUndefined();
    limiter.down.take.add('"broker"');
    expect((await limits.forSubject(github, 'main', ['"broker"', '"other"']))?.limit).toBe('subject');
    limiter.down.take.clear();
    expect((await limits.forSubject(github, 'main', ['"broker"']))?.limit).toBe('subject');
  });

  it('never refuses for a limit set to 0 per minute, however small its burst: the limit is off', async () => {
    const limits = limitsWith({ subject: { name: 'subject', perMinute: 0, burst: 1 }, tenantRefusals: { name: 'tenant_refusals', perMinute: 0, burst: 1 } });
    for (let request = 0; request < 3; request += 1) {
      expect(await limits.forSubject(github, 'main')).toBeUndefined();
      expect(await limits.forTenantRefusalRecord(github)).toEqual({});
    }
  });

  it('counts no unrecorded refusals after a run of one, whose only refusal was recorded; after a longer run, all but its first', async () => {
    let clock = 0;
    const limits = limitsWith({ tenantRefusals: tight('tenant_refusals') }, () => clock);
    expect(await limits.forTenantRefusalRecord(github)).toEqual({});
    expect((await limits.forTenantRefusalRecord(github)).refusal).toMatchObject({ limit: 'tenant_refusals', recorded: true });
    clock += 60_000;
    expect(await limits.forTenantRefusalRecord(github)).toEqual({});
    for (let request = 0; request < 3; request += 1) await limits.forTenantRefusalRecord(github);
    clock += 60_000;
    expect(await limits.forTenantRefusalRecord(github)).toEqual({ unrecorded: 2 });
  });
});
