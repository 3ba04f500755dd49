import { DurableObject } from 'cloudflare:workers';
import { MemoryRateLimiter } from '../../core/limits/memory-rate-limiter.ts';
import type { RateLimiter } from '../../core/limits/rate-limiter.ts';
import type { RateLimit, RateVerdict } from '../../core/limits/token-bucket.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * Rate-limit buckets on Workers: the Node broker's in-memory buckets, inside Durable Objects.
 * An object is one instance worldwide and runs one call at a time, so a bucket is exact across
 * isolates and locations (the Rate Limiting binding counts per location, eventually). Buckets
 * stay in memory: an object is only evicted after it sat idle, and a bucket idle that long has
 * refilled anyway, so there is nothing worth writing to storage.
 *
 * Buckets refill by the object's own clock, never a caller's. Isolates in different locations read
 * their clocks at different moments before their calls arrive (a Worker's clock moves only on I/O,
 * and a call from afar is longer on the way), so their times reach a bucket out of order: each step
 * back and forth would refill the same span twice, and a client that sends from two locations at
 * once would be let through past its limit.
 */
export class RateLimitState extends DurableObject<WorkerEnv> {
  readonly #buckets = new MemoryRateLimiter();

  take(limit: RateLimit, key: string): RateVerdict {
    return this.#buckets.takeNow(limit, key, Date.now());
  }

  giveBack(limit: RateLimit, key: string): void {
    this.#buckets.giveBackNow(limit, key, Date.now());
  }
}

export const RATE_LIMIT_SHARDS = 16;

/**
 * The least share of a shared limit's burst and rate one budget object holds. A limit too small
 * to give RATE_LIMIT_SHARDS objects this much each is split over fewer (down to one object,
 * exact), so a small limit stays exact and a budget is large enough for random spread to even out.
 */
export const MIN_BUDGET_SHARE = 100;

/** A shared limit split into budgets whose rates and bursts sum exactly to the limit's. */
export function sharedBudgets(limit: RateLimit): RateLimit[] {
  const count = Math.max(1, Math.min(RATE_LIMIT_SHARDS, Math.floor(Math.min(limit.perMinute, limit.burst) / MIN_BUDGET_SHARE)));
  const share = (total: number, index: number) => Math.floor(total / count) + (index < total % count ? 1 : 0);
  return Array.from({ length: count }, (_, index) => ({ ...limit, perMinute: share(limit.perMinute, index), burst: share(limit.burst, index) }));
}

/** Picks one of `count` budgets; random, so every budget object takes an even part of the traffic. */
export type BudgetPick = (count: number) => number;

const randomBudget: BudgetPick = (count) => Math.floor(Math.random() * count);

/**
 * The Worker-side RateLimiter: RPC to the object holding the key's bucket. Keys spread over
 * RATE_LIMIT_SHARDS objects by a hash of limit and key. The shared (global) limit is split into
 * budgets in objects of their own (sharedBudgets), and each request draws from one picked at
 * random, so no object sees every request. A limit's figures are part of the object name, so a
 * changed setting starts afresh. The caller's `now` is not sent: the objects go by their own clock.
 */
export function rateLimitShards(namespace: DurableObjectNamespace<RateLimitState>, pick: BudgetPick = randomBudget): RateLimiter {
  const object = (limit: RateLimit, shard: string) => namespace.get(namespace.idFromName(`${limit.name}-${limit.perMinute}-${limit.burst}-${shard}`));
  const holding = (limit: RateLimit, key: string) => object(limit, String(fnv1a(`${limit.name}\n${key}`) % RATE_LIMIT_SHARDS));
  return {
    take: async (limit, key) => holding(limit, key).take(limit, key),
    giveBack: async (limit, key) => holding(limit, key).giveBack(limit, key),
    takeShared: async (limit) => {
      const budgets = sharedBudgets(limit);
      const index = pick(budgets.length);
      const budget = budgets[index];
      if (budget === undefined) throw new RangeError(`no budget ${index} of ${budgets.length}`);
      return object(limit, `budget-${index}`).take(budget, '');
    },
  };
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
