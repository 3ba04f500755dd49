import { accountBucketKey, subjectBucketKey, type CallerAccount, type VerifiedCaller } from '../claims/caller-account.ts';
import { clientNetwork } from './network-of.ts';
import { errorText, type Logger } from '../log.ts';
import type { LimitSettings } from './limit-settings.ts';
import { RateLimitedError } from './rate-limited-error.ts';
import type { RateLimiter } from './rate-limiter.ts';
import type { RateLimit } from './token-bucket.ts';

/** A limit checked before a request's body is read, keyed on its client's address; detachable, as middleware takes it. */
export type LimitBeforeBody = (clientIp: string | undefined) => Promise<RateLimitedError | undefined>;

/** The /token rate limits, at the two points of a request where they belong. */
export interface RequestLimits {
  /**
   * Before the body is read or any signature checked: per client network, then global. Keys on
   * nothing the caller writes, so it protects the expensive part without trusting the request.
   */
  readonly beforeVerification: LimitBeforeBody;
  /**
   * Per client network only: for the operator APIs, which a flood from elsewhere must not lock out
   * by spending the global budget, and which must not spend the exchanges' share of it.
   */
  readonly forClient: LimitBeforeBody;
  /**
   * After the subject token verified: per issuer, account and subject. A forged `sub` never verifies, so it cannot drain
   * the bucket of the identity it names; nor can another account's token whose issuer signed the same `sub` (GitHub lets
   * each repository choose its sub's claims: `job_workflow_ref:…` alone is every caller's of that reusable workflow).
   * `audiences` (at /token, audienceBucketKeys of the token's `aud`): a bucket each, every one of which the request spends
   * (none when one refuses it), so a job's token for another service, replayed here by that service, cannot drain the one
   * its tokens for the broker spend, and a token that names the broker's audience beside others spends that one too.
   */
  forSubject(caller: CallerAccount, subject: string, audiences?: readonly string[]): Promise<RateLimitedError | undefined>;
  /**
   * Before a repository's own policy is fetched from GitHub (a cache miss): per verified subject (of its tenant: another
   * account's token may carry the same sub) at the configured rate, and per tenant where its issuer names one at ten times that (one account
   * mints tokens of as many subjects as it has branches, environments or matrix jobs). However many
   * repositories, policy names and subjects a caller invents, it costs the App's GitHub quota at
   * these rates at most, and it spends no budget but its own and its tenant's.
   */
  forRepositoryPolicyFetch(caller: VerifiedCaller): Promise<RateLimitedError | undefined>;
  /**
   * Before the refusal of a request whose subject token did not verify is recorded: per audit chain (`chain`, the shard
   * the record goes to on Workers; Node has one). Anyone can send such requests, naming whose chain they land in, so
   * this bounds what strangers make keyway store; a verified identity's records never spend it. `unrecorded`: how many
   * refusals of the run of `rate_limited` this record ends were answered without a record (all but the run's first).
   */
  forUnverifiedRecord(chain: string): Promise<RecordBudget>;
  /**
   * Before the refusal of a verified caller that no allow policy matched is recorded: per issuer and account. A shared
   * issuer vouches for strangers, who can each mint tokens of as many subjects as they like; this bounds what they make
   * keyway store, and a stranger spends no budget but its own account's. `unrecorded` as for forUnverifiedRecord.
   */
  forTenantRefusalRecord(caller: CallerAccount): Promise<RecordBudget>;
}

/** A budget of audit records, asked before one is appended: the limit's refusal past it, or how many went unrecorded before this one. */
export interface RecordBudget {
  readonly refusal?: RateLimitedError;
  readonly unrecorded?: number;
}

/**
 * How many callers' repository-policy budgets one tenant's together may spend: enough for an organisation's pipelines,
 * a bound on one account that invents subjects (branches, environments, matrix jobs) to spend the App's quota.
 */
const TENANT_SHARE = 10;

/**
 * Applies `settings` through `limiter`. When the limiter itself fails (its storage is
 * unreachable), the request goes on: a limit sheds load, it does not decide who gets a token.
 */
export function requestLimits(limiter: RateLimiter, settings: LimitSettings, now: () => number, log: Logger): RequestLimits {
  /**
   * `took` says a token was spent, which only a bucket that answered did: a refusal or a failed-open take spent none.
   * `endsRun`: the refusals of the run a request let through ends.
   */
  const attempt = async (limit: RateLimit, key: string | undefined): Promise<{ refusal?: RateLimitedError; took: boolean; endsRun?: number }> => {
    if (limit.perMinute === 0) return { took: false };
    try {
      const verdict = await (key === undefined ? limiter.takeShared(limit, now()) : limiter.take(limit, key, now()));
      if (verdict.allowed) return { took: true, ...(verdict.endsRun === undefined ? {} : { endsRun: verdict.endsRun }) };
      return { refusal: new RateLimitedError(limit, verdict.retryAfterSeconds, verdict.refused), took: false };
    } catch (error) {
      log.error('rate limiter unavailable; request let through', {
        limit: limit.name,
        error: errorText(error),
      });
      return { took: false };
    }
  };
  const check = async (limit: RateLimit, key: string | undefined): Promise<RateLimitedError | undefined> => (await attempt(limit, key)).refusal;
  const spendRecord = async (limit: RateLimit, key: string): Promise<RecordBudget> => {
    const { refusal, endsRun = 0 } = await attempt(limit, key);
    if (refusal !== undefined) return { refusal };
    return endsRun > 1 ? { unrecorded: endsRun - 1 } : {};
  };
  const forClient: LimitBeforeBody = async (clientIp) => (clientIp === undefined ? undefined : await check(settings.client, clientNetwork(clientIp)));
  return {
    beforeVerification: async (clientIp) => (await forClient(clientIp)) ?? (await check(settings.global, undefined)),
    forClient,
    forSubject: async (caller, subject, audiences) => {
      const key = subjectBucketKey(caller, subject);
      if (audiences === undefined) return check(settings.subject, key);
      const taken: string[] = [];
      for (const audienceKey of audiences.map((audience) => `${key}\n${audience}`)) {
        const { refusal, took } = await attempt(settings.subject, audienceKey);
        if (refusal !== undefined) {
          await Promise.all(taken.map((spent) => limiter.giveBack(settings.subject, spent, now()).catch(() => undefined)));
          return refusal;
        }
        if (took) taken.push(audienceKey);
      }
      return undefined;
    },
    forRepositoryPolicyFetch: async (caller) => {
      const subjectKey = subjectBucketKey(caller, caller.subject);
      const bySubject = await attempt(settings.repositoryPolicy, subjectKey);
      if (bySubject.refusal !== undefined || caller.tenant === undefined) return bySubject.refusal;
      const { perMinute, burst } = settings.repositoryPolicy;
      const byTenant = await check(
        { name: 'repository_policy_tenant', perMinute: perMinute * TENANT_SHARE, burst: burst * TENANT_SHARE },
        accountBucketKey(caller),
      );
      // Refused by its account's share, the fetch never happens: a caller that obeys Retry-After keeps its own budget for when it does.
      if (byTenant !== undefined && bySubject.took) await limiter.giveBack(settings.repositoryPolicy, subjectKey, now()).catch(() => undefined);
      return byTenant;
    },
    forUnverifiedRecord: (chain) => spendRecord(settings.unverified, chain),
    forTenantRefusalRecord: (caller) => spendRecord(settings.tenantRefusals, accountBucketKey(caller)),
  };
}
