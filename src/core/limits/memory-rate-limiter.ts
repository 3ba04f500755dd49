import type { RateLimiter } from './rate-limiter.ts';
import { isFull, returnToken, takeToken, type Bucket, type RateLimit, type RateVerdict } from './token-bucket.ts';

/** Buckets kept before full ones are forgotten: bounds memory however many keys an attacker invents. */
export const MAX_BUCKETS = 100_000;

/**
 * Token buckets in memory: the Node broker's limiter, and the state inside each Workers
 * RateLimitState object. A full bucket is the same as no bucket, so when the map is full the
 * full ones are dropped, then the least recently used.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, { limit: RateLimit; bucket: Bucket }>();
  readonly #maxBuckets: number;

  constructor(maxBuckets = MAX_BUCKETS) {
    this.#maxBuckets = maxBuckets;
  }

  get size(): number {
    return this.#buckets.size;
  }

  async take(limit: RateLimit, key: string, now: number): Promise<RateVerdict> {
    return this.takeNow(limit, key, now);
  }

  async takeShared(limit: RateLimit, now: number): Promise<RateVerdict> {
    return this.takeNow(limit, '', now);
  }

  async giveBack(limit: RateLimit, key: string, now: number): Promise<void> {
    this.giveBackNow(limit, key, now);
  }

  /** Gives a token back to the bucket; one forgotten meanwhile was full, and stays forgotten. */
  giveBackNow(limit: RateLimit, key: string, now: number): void {
    const id = `${limit.name}\n${key}`;
    const held = this.#buckets.get(id);
    if (held !== undefined) this.#buckets.set(id, { limit, bucket: returnToken(limit, held.bucket, now) });
  }

  /** The synchronous step, for a caller that must not yield between reading and writing a bucket. */
  takeNow(limit: RateLimit, key: string, now: number): RateVerdict {
    const id = `${limit.name}\n${key}`;
    const held = this.#buckets.get(id);
    const { bucket, verdict } = takeToken(limit, held?.bucket, now);
    // Re-inserting moves the key to the end: the map's order is least recently used first.
    this.#buckets.delete(id);
    if (this.#buckets.size >= this.#maxBuckets) this.#evict(now);
    this.#buckets.set(id, { limit, bucket });
    return verdict;
  }

  #evict(now: number): void {
    for (const [id, held] of this.#buckets) if (isFull(held.limit, held.bucket, now)) this.#buckets.delete(id);
    const excess = this.#buckets.size - Math.floor(this.#maxBuckets * 0.9);
    if (excess <= 0) return;
    let dropped = 0;
    for (const id of this.#buckets.keys()) {
      if (dropped >= excess) break;
      this.#buckets.delete(id);
      dropped += 1;
    }
  }
}
