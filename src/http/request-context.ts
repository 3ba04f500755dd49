import type { Context } from 'hono';
import type { RequestContext } from '../core/exchange/exchange-token.ts';

/** What an audit record says of the request: its id (hono's requestId middleware), the client's address as the deployment finds it, its User-Agent. */
export function requestContext(c: Context, clientIp: (c: Context) => string | undefined): RequestContext {
  return { requestId: String(c.get('requestId')), clientIp: clientIp(c), userAgent: c.req.header('user-agent') };
}
