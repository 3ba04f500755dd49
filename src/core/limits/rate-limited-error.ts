import { ExchangeError } from '../errors/exchange-error.ts';
import type { RateLimit } from './token-bucket.ts';

/**
 * A request refused by a rate limit. Only the first refusal after a bucket last let a request
 * through is audited (`recorded`); the rest of a flood is counted in metrics and not written,
 * so the audit log grows no faster than the limits let requests through.
 */
export class RateLimitedError extends ExchangeError {
  override readonly name: string = 'RateLimitedError';
  readonly limit: string;
  readonly retryAfterSeconds: number;
  readonly recorded: boolean;

  constructor(limit: RateLimit, retryAfterSeconds: number, refused: number) {
    super(
      'rate_limited',
      `the ${limit.name} rate limit (${limit.perMinute} per minute, burst ${limit.burst}) is exhausted; retry after ${retryAfterSeconds} s`,
      { public: true },
    );
    this.limit = limit.name;
    this.retryAfterSeconds = retryAfterSeconds;
    this.recorded = refused === 1;
  }
}
