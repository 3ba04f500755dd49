import type { MiddlewareHandler } from 'hono';
import { AUDIT_EVENT_HEADER } from './routes/proxy.ts';

/**
 * `Cache-Control: no-store` on every error keyway answers with, whichever route or middleware wrote it (notFound's and
 * onError's answers included): RFC 6749 §5.1 and §5.2 require it of the token endpoint's answers, errors too, and an
 * operator API's or the audit page's refusal has no place in a cache either. Set once here rather than by each answer,
 * so a new refusal cannot leave without it. An upstream's answer through the proxy (it carries AUDIT_EVENT_HEADER) is
 * the upstream's, passed on untouched.
 */
export function noStoreErrors(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (c.res.status >= 400 && !c.res.headers.has(AUDIT_EVENT_HEADER)) c.header('Cache-Control', 'no-store');
  };
}
