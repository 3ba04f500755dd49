import type { MiddlewareHandler } from 'hono';
import { NO_SNIFF } from './oauth-errors.ts';
import { AUDIT_EVENT_HEADER } from './routes/proxy.ts';

/**
 * The headers every answer keyway writes carries, whichever route or middleware wrote it (notFound's and onError's
 * answers included), set once here so a new answer cannot leave without them:
 * - `Cache-Control: no-store` on every error: RFC 6749 §5.1 and §5.2 require it of the token endpoint's answers, errors
 *   too, and an operator API's or the audit page's refusal has no place in a cache either;
 * - `X-Content-Type-Options: nosniff` on every answer: an error body echoes a little of its request (JSON-escaped), and a
 *   browser must never read it as anything but its declared type.
 * An upstream's answer through the proxy (it carries AUDIT_EVENT_HEADER) is the upstream's, passed on untouched.
 */
export function responseHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    // Set on the answer's own headers, as hono's secureHeaders does: c.header() on a finished answer would build it anew.
    const { headers } = c.res;
    if (headers.has(AUDIT_EVENT_HEADER)) return;
    headers.set('X-Content-Type-Options', NO_SNIFF['X-Content-Type-Options']);
    if (c.res.status >= 400) headers.set('Cache-Control', 'no-store');
  };
}
