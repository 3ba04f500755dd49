import type { Context, MiddlewareHandler } from 'hono';
import type { RateLimitedError } from '../../core/limits/rate-limited-error.ts';
import type { LimitBeforeBody } from '../../core/limits/request-limits.ts';
import { NO_STORE } from '../oauth-errors.ts';

/**
 * The rate limits of a request before its body is read or any signature checked (`limit`: per client
 * network, then global, or per client only): a flood is shed before it costs a signature check. The per-subject limit
 * comes later, in the exchange, once the subject token verified. `refuse` answers a refusal, and
 * audits it as the exchange audits any other.
 */
export function rateLimitBeforeBody(
  limit: LimitBeforeBody,
  clientIp: (c: Context) => string | undefined,
  refuse: (c: Context, limited: RateLimitedError) => Promise<Response>,
): MiddlewareHandler {
  return async (c, next) => {
    const limited = await limit(clientIp(c));
    if (limited !== undefined) return refuse(c, limited);
    await next();
  };
}

/**
 * rateLimitBeforeBody for the routes that take the broker's own tokens: a flood is answered 429
 * without a record (each record it caused would be one more row for whoever floods); `counted` is told of each.
 */
export function shedBeforeBody(
  limit: LimitBeforeBody,
  clientIp: (c: Context) => string | undefined,
  counted?: (limited: RateLimitedError) => void,
): MiddlewareHandler {
  return rateLimitBeforeBody(limit, clientIp, async (c, limited) => {
    counted?.(limited);
    return c.json({ error: 'temporarily_unavailable', error_description: limited.message }, 429, {
      ...NO_STORE,
      'Retry-After': String(limited.retryAfterSeconds),
    });
  });
}
