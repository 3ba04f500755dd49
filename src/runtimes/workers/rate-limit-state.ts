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
 */
export class RateLimitState extends DurableObject<WorkerEnv> {
  readonly #buckets = new MemoryRateLimiter();

  take(limit: RateLimit, key: string, now: number): RateVerdict {
    return this.#buckets.takeNow(limit, key, now);
  }
}

export const RATE_LIMIT_SHARDS = 16;

/**
 * The Worker-side RateLimiter: RPC to the object holding the key's bucket. Keys spread over
 * RATE_LIMIT_SHARDS objects by a hash of limit and key (the global bucket is one key, so one
 * object). A limit's figures are part of the object name, so a changed setting starts afresh.
 */
export function rateLimitShards(namespace: DurableObjectNamespace<RateLimitState>): RateLimiter {
  return {
    take: async (limit, key, now) => {
      const shard = fnv1a(`${limit.name}\n${key}`) % RATE_LIMIT_SHARDS;
      const stub = namespace.get(namespace.idFromName(`${limit.name}-${limit.perMinute}-${limit.burst}-${shard}`));
      return stub.take(limit, key, now);
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
