import { describe, expect, it } from 'vitest';
import type { AuditEventDraft } from '../../src/core/audit/audit-event.ts';
import type { CallerAccount } from '../../src/core/claims/caller-account.ts';
import { ExchangeError } from '../../src/core/errors/exchange-error.ts';
import type { LimitSettings } from '../../src/core/limits/limit-settings.ts';
import { MemoryRateLimiter } from '../../src/core/limits/memory-rate-limiter.ts';
import { RateLimitedError } from '../../src/core/limits/rate-limited-error.ts';
import { refusalToAnswer } from '../../src/core/limits/refusal-record.ts';
import { requestLimits } from '../../src/core/limits/request-limits.ts';
import { silentLogger } from '../../src/core/log.ts';

const OFF = { perMinute: 0, burst: 1 } as const;
/** Only the account's refusal budget on: one record a minute, a burst of one. */
const settings: LimitSettings = {
  global: { name: 'global', ...OFF },
  client: { name: 'client', ...OFF },
  subject: { name: 'subject', perMinute: 1, burst: 1 },
  repositoryPolicy: { name: 'repository_policy', ...OFF },
  unverified: { name: 'unverified', ...OFF },
  tenantRefusals: { name: 'tenant_refusals', perMinute: 1, burst: 1 },
};
const caller: CallerAccount = { issuer: 'https://token.actions.githubusercontent.com', account: 'tenant 666' };

/** The record of a verified caller's refusal, decided (with the policies it matched) or not. */
const eventOf = (matched?: readonly string[]): AuditEventDraft => ({
  id: '01M83V0FW99QRH1V620WG8J7T1',
  time: new Date(0).toISOString(),
  request: { id: 'request-1' },
  decision: 'error',
  reason: 'internal_error',
  issuer: caller.issuer,
  subject: 'repo:mallory/x:ref:refs/heads/main',
  ...(matched === undefined ? {} : { policy: { candidates: [...matched], matched, denied_by: [], audit_mode: [] } }),
});

describe('refusalToAnswer: which refusals of a verified caller spend its account’s budget', () => {
  const setup = () => {
    const deps = { limits: requestLimits(new MemoryRateLimiter(), settings, () => 0, silentLogger), audit: {} };
    /** Spends the account's one record, and starts a run past it. */
    const spendBudget = async () => {
      for (let request = 0; request < 2; request += 1) {
        await refusalToAnswer(deps, eventOf([]), new ExchangeError('no_policy_matched', 'no allow policy matched the token'), { caller });
      }
    };
    return { deps, spendBudget };
  };
  const noPolicy = () => new ExchangeError('no_policy_matched', 'no allow policy matched the token');

  it("records a refusal of a caller the decision matched an allow policy for, past its account's budget, though the central set does not know its token (a repository's own policy)", async () => {
    const { deps, spendBudget } = setup();
    await spendBudget();
    const matched = await refusalToAnswer(deps, eventOf(['acme-api/release']), new ExchangeError('audience_not_granted', 'not granted'), {
      caller,
      knownToPolicies: () => false,
    });
    expect(matched.recorded).toBe(true);
    expect((await refusalToAnswer(deps, eventOf([]), noPolicy(), { caller, knownToPolicies: () => true })).recorded).toBe(false);
  });

  it("asks no policy and spends nothing for a rate limit's refusal after the first of its run: the run stays one record", async () => {
    const { deps } = setup();
    let asked = 0;
    const stranger = {
      caller,
      knownToPolicies: () => {
        asked += 1;
        return false;
      },
    };
    for (let request = 0; request < 3; request += 1) {
      const answered = await refusalToAnswer(deps, eventOf(), new RateLimitedError(settings.subject, 60, 2 + request), stranger);
      expect(answered).toMatchObject({ recorded: false, limit: 'subject' });
    }
    expect(asked).toBe(0);
    // The account's budget is whole: the next refusal no policy matched is recorded as it is.
    const next = eventOf([]);
    expect(await refusalToAnswer(deps, next, noPolicy(), { caller })).toEqual({ failure: expect.any(ExchangeError), recorded: true });
    expect(next.detail).toBe('no allow policy matched the token');
  });

  it("answers the first 429 of a stranger's run with the limit that refused it, counted under it within its account's budget and past it", async () => {
    const { deps } = setup();
    const stranger = { caller, knownToPolicies: () => false };
    const first = await refusalToAnswer(deps, eventOf(), new RateLimitedError(settings.subject, 60, 1), stranger);
    expect(first).toMatchObject({ recorded: true, limit: 'subject' });
    const past = await refusalToAnswer(deps, eventOf(), new RateLimitedError(settings.subject, 60, 1), stranger);
    expect(past).toMatchObject({ recorded: true, limit: 'subject' });
    expect(past.failure).toBeInstanceOf(RateLimitedError);
    const unrecorded = await refusalToAnswer(deps, eventOf(), new RateLimitedError(settings.subject, 60, 1), stranger);
    expect(unrecorded).toMatchObject({ recorded: false, limit: 'subject' });
  });
});
