import { callerAccount } from '../../src/core/claims/caller-account.ts';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import type { LimitSettings } from '../../src/core/limits/limit-settings.ts';
import type { RateLimiter } from '../../src/core/limits/rate-limiter.ts';
import { requestLimits } from '../../src/core/limits/request-limits.ts';

const OFF = { perMinute: 0, burst: 1 } as const;
/** Only the repository-policy budget on: one fetch a minute, a burst of two. */
const settings: LimitSettings = {
  global: { name: 'global', ...OFF },
  client: { name: 'client', ...OFF },
  subject: { name: 'subject', ...OFF },
  repositoryPolicy: { name: 'repository_policy', perMinute: 1, burst: 2 },
  unverified: { name: 'unverified', ...OFF },
  tenantRefusals: { name: 'tenant_refusals', ...OFF },
};

/**
 * The repository-policy fetch budgets over a runtime's real limiter: a caller's own, and its account's share at ten
 * times that. Runs on Node (in memory) and in workerd (the RateLimitState objects). `limiter`: one whose buckets refill
 * by `now` (on Workers the objects' own clock, set to it).
 */
export function repositoryPolicyShareSuite(runtime: string, limiter: (now: () => number) => RateLimiter): void {
  describe(`repository-policy fetch budgets on ${runtime}`, () => {
    /** The limits at `now`, over the runtime's limiter or `over`. */
    const limitsAt = (now: () => number, over: RateLimiter = limiter(now)) => requestLimits(over, settings, now, silentLogger);
    /** A GitHub Actions caller of account `owner`, as the exchange names it once its token verified. */
    const callerOf = (issuer: string, owner: string, subject: string) => ({
      ...callerAccount(issuer, ['repository_owner_id'], { repository_owner_id: owner, sub: subject }),
      subject,
    });
    it("gives a caller's own token back when its account's share refuses the fetch: obeying Retry-After, it fetches its whole burst once the share refills", async () => {
      let clock = Date.now();
      const limits = limitsAt(() => clock);
      // An issuer of its own: on Workers the buckets outlive a test.
      const issuer = `https://ci.example/${crypto.randomUUID()}`;
      const fetch = (subject: string) => limits.forRepositoryPolicyFetch(callerOf(issuer, 'acme', subject));
      // Ten of the account's callers spend its share (ten budgets of 2).
      for (let caller = 0; caller < 10; caller += 1) for (let i = 0; i < 2; i += 1) expect(await fetch(`branch-${caller}`)).toBeUndefined();
      const refused = [];
      for (let i = 0; i < 4; i += 1) refused.push(await fetch('late'));
      expect(refused.map((refusal) => refusal?.limit)).toEqual(Array(4).fill('repository_policy_tenant'));
      // The share refills one fetch every 6 s; the caller's own budget, one a minute, was never spent.
      clock += 12_000;
      expect([await fetch('late'), await fetch('late')]).toEqual([undefined, undefined]);
      expect((await fetch('late'))?.limit).toBe('repository_policy');
    });

    it("keys a caller's own budget on its tenant too: another account's token with the same issuer and sub spends none of it", async () => {
      const clock = Date.now();
      const limits = limitsAt(() => clock);
      const issuer = `https://ci.example/${crypto.randomUUID()}`;
      // GitHub signs the sub each repository chose (include_claim_keys): job_workflow_ref alone is every caller's of that workflow.
      const subject = 'job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/heads/main';
      const stranger = () => limits.forRepositoryPolicyFetch(callerOf(issuer, '666000', subject));
      expect([await stranger(), await stranger()]).toEqual([undefined, undefined]);
      expect((await stranger())?.limit).toBe('repository_policy');
      const victim = () => limits.forRepositoryPolicyFetch(callerOf(issuer, '1200934', subject));
      expect([await victim(), await victim()]).toEqual([undefined, undefined]);
      expect((await victim())?.limit).toBe('repository_policy');
    });

    it("gives back nothing when the caller's own take failed open (its limiter unreachable): no fetch it never paid for", async () => {
      let clock = Date.now();
      const real = limiter(() => clock);
      let failSubjectTakes = false;
      const flaky: RateLimiter = {
        take: (limit, key, at) =>
          failSubjectTakes && limit.name === 'repository_policy' ? Promise.reject(new Error('limiter unreachable')) : real.take(limit, key, at),
        takeShared: (limit, at) => real.takeShared(limit, at),
        giveBack: (limit, key, at) => real.giveBack(limit, key, at),
      };
      const limits = limitsAt(() => clock, flaky);
      const issuer = `https://ci.example/${crypto.randomUUID()}`;
      const fetch = (subject: string) => limits.forRepositoryPolicyFetch(callerOf(issuer, 'acme', subject));
      // The caller spends one of its two; the account's other callers spend the rest of its share.
      expect(await fetch('late')).toBeUndefined();
      for (let caller = 0; caller < 10; caller += 1) for (let i = 0; i < 2; i += 1) await fetch(`branch-${caller}`);
      // Its own limiter fails (the fetch would go on), the share refuses: nothing was taken, so nothing comes back.
      failSubjectTakes = true;
      expect((await fetch('late'))?.limit).toBe('repository_policy_tenant');
      failSubjectTakes = false;
      clock += 12_000;
      expect(await fetch('late')).toBeUndefined();
      expect((await fetch('late'))?.limit).toBe('repository_policy');
    });
  });
}
