import type { RateLimit, RateVerdict } from './token-bucket.ts';

/**
 * Where buckets live: in the process on Node, in Durable Objects on Workers. `now` is the caller's clock, which buckets in
 * the caller's process refill by; buckets elsewhere refill by the clock where they are, one clock for every caller.
 */
export interface RateLimiter {
  take(limit: RateLimit, key: string, now: number): Promise<RateVerdict>;
  /**
   * The bucket every request draws from (the global limit). One bucket where it is cheap to hold
   * one; on Workers, budgets in several objects that sum to `limit`, so no one object sees every request.
   */
  takeShared(limit: RateLimit, now: number): Promise<RateVerdict>;
  /** Gives back the token `take` took for a request another limit then refused. */
  giveBack(limit: RateLimit, key: string, now: number): Promise<void>;
}
