import type { MiddlewareHandler } from 'hono';
import { conformingDescription } from './oauth-errors.ts';
import { AUDIT_EVENT_HEADER } from './routes/proxy.ts';

const JSON_TYPE = /^application\/json\b/i;

/**
 * Holds every `error_description` keyway answers with to RFC 6749 §5.2 (conformingDescription), whichever route or
 * middleware wrote it: an error answer's JSON body is read back and rewritten only when its description does not
 * conform. An upstream's answer through the proxy (it carries AUDIT_EVENT_HEADER) is the upstream's, passed on untouched.
 */
export function conformingErrorDescriptions(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const answer = c.res;
    if (answer.status < 400 || !JSON_TYPE.test(answer.headers.get('content-type') ?? '') || answer.headers.has(AUDIT_EVENT_HEADER)) return;
    const body: unknown = await answer
      .clone()
      .json()
      .catch(() => undefined);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    const description: unknown = (body as Record<string, unknown>)['error_description'];
    if (typeof description !== 'string') return;
    const conforming = conformingDescription(description);
    if (conforming === description) return;
    c.res = new Response(JSON.stringify({ ...body, error_description: conforming }), answer);
  };
}
