/** One rate limit: `perMinute` tokens refill steadily, up to `burst` saved up. */
export interface RateLimit {
  /** Names the limit in answers, logs and metrics: `global`, `client`, `subject`. */
  readonly name: string;
  readonly perMinute: number;
  readonly burst: number;
}

export interface Bucket {
  readonly tokens: number;
  readonly updatedAt: number;
  /** Requests refused since the bucket last let one through. */
  readonly refused: number;
}

export type RateVerdict =
  | {
      readonly allowed: true;
      /** Requests the bucket refused since it last let one through, when there were any: the run of refusals this request ends. */
      readonly endsRun?: number;
    }
  | {
      readonly allowed: false;
      /** Whole seconds until the next request would be let through, at least 1. */
      readonly retryAfterSeconds: number;
      /** 1 for the first refusal after a request was let through, then 2, 3, … */
      readonly refused: number;
    };

/** The tokens a bucket holds at `now`, refilled since it was last touched but not capped at `burst`; time running backwards refills nothing. */
function refilled(limit: RateLimit, bucket: Bucket, now: number): number {
  return bucket.tokens + Math.max(0, now - bucket.updatedAt) * (limit.perMinute / 60_000);
}

/**
 * When a bucket touched at `now` was last refilled up to: time running backwards never moves it back, or the span would
 * refill twice. But a step back longer than the bucket takes to fill is the clock set back (NTP correcting a clock that ran
 * ahead), not times arriving out of order: held at the later time, the bucket would refill nothing until the clock is back
 * there (the global limit, a whole broker refused for as long as the clock was ahead). It goes on from `now`: refilling the
 * span again gives a caller at most one burst more.
 */
function refilledUpTo(limit: RateLimit, bucket: Bucket | undefined, now: number): number {
  if (bucket === undefined) return now;
  const fillsInMs = (limit.burst * 60_000) / limit.perMinute;
  return bucket.updatedAt - now > fillsInMs ? now : Math.max(bucket.updatedAt, now);
}

/**
 * The token bucket algorithm as a pure step: the bucket as it was (undefined: never used, so
 * full), the time now, and the bucket after one request with the verdict on it. Time running
 * backwards refills nothing, neither now nor later (but for a step back longer than the bucket takes to fill: refilledUpTo).
 */
export function takeToken(limit: RateLimit, bucket: Bucket | undefined, now: number): { bucket: Bucket; verdict: RateVerdict } {
  const perMs = limit.perMinute / 60_000;
  const tokens = bucket === undefined ? limit.burst : Math.min(limit.burst, refilled(limit, bucket, now));
  const updatedAt = refilledUpTo(limit, bucket, now);
  if (tokens >= 1) {
    const endsRun = bucket?.refused ?? 0;
    return { bucket: { tokens: tokens - 1, updatedAt, refused: 0 }, verdict: endsRun > 0 ? { allowed: true, endsRun } : { allowed: true } };
  }
  const refused = (bucket?.refused ?? 0) + 1;
  return {
    bucket: { tokens, updatedAt, refused },
    verdict: { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)), refused },
  };
}

/**
 * The bucket with the token of a request it let through given back, never above `burst`: another
 * limit refused that request after this one took its token, so it never happened.
 */
export function returnToken(limit: RateLimit, bucket: Bucket, now: number): Bucket {
  return { tokens: Math.min(limit.burst, refilled(limit, bucket, now) + 1), updatedAt: refilledUpTo(limit, bucket, now), refused: bucket.refused };
}

/** True when the bucket is back to full at `now`: forgetting it changes nothing. */
export function isFull(limit: RateLimit, bucket: Bucket, now: number): boolean {
  return refilled(limit, bucket, now) >= limit.burst;
}
