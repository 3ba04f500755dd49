import type { RateLimit, RateVerdict } from './token-bucket.ts';

/** Where buckets live: in the process on Node, in Durable Objects on Workers. */
export interface RateLimiter {
  take(limit: RateLimit, key: string, now: number): Promise<RateVerdict>;
}
