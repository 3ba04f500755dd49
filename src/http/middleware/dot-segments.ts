import type { Context, MiddlewareHandler } from 'hono';

/** The request target as the client sent it, where the runtime has it (Node: the request line); else the URL's own text is read. */
export type RequestTarget = (c: Context) => string | undefined;

/** Why a target with a dot segment is refused, on every route. */
export const DOT_SEGMENT_REFUSED = 'the request target has a . or .. segment (or %2e), which a URL parser would resolve to another path: refused as sent';

/**
 * Refuses, before any route, a request target with a `.` or `..` segment (or `%2e`) as the client sent it. Node's server
 * resolves them before routing (`/x/../token` reached /token) and workerd does not (no route), so a front that lets paths
 * through by prefix could be walked past on one runtime only; refused as sent, every route behaves the same on both.
 * A target that is `/proxy/…` as sent or once resolved is `atProxy`'s to answer (recorded, docs/proxy.md); any other is
 * answered here without a record: no route was reached and no credential read, as for a path no route serves.
 */
export function refuseDotSegments(requestTarget: RequestTarget | undefined, atProxy: (c: Context) => Promise<Response>): MiddlewareHandler {
  return async (c, next) => {
    // Every request passes here, /token's among them: the cheap test first, the URL parsed only for a dot segment.
    const sent = targetAsSent(c, requestTarget);
    if (!hasDotSegment(sent)) return next();
    if (pathAsSent(sent).startsWith('/proxy/') || new URL(c.req.url).pathname.startsWith('/proxy/')) return atProxy(c);
    return c.json({ error: 'invalid_request', error_description: DOT_SEGMENT_REFUSED }, 400);
  };
}

/** The request target as the client sent it: the request line where the runtime has it (Node), else the URL's own text, unparsed. */
export function targetAsSent(c: Context, requestTarget: RequestTarget | undefined): string {
  return requestTarget?.(c) ?? pathAsSent(c.req.url);
}

/**
 * The path and query of a target in origin form as it is; of a URL or a target in absolute form (`http://host/proxy/…`,
 * RFC 9112 §3.2.2), what follows the authority (`/` when nothing does).
 */
function pathAsSent(target: string): string {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  return authority === null ? target : target.slice(authority[0].length) || '/';
}

/** Whether the target's path holds a `.` or `..` segment, percent-encoded or not: what a URL parser resolves. */
function hasDotSegment(target: string): boolean {
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  return path.split('/').some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment));
}
