import { Hono, type Context } from 'hono';
import type { OwnTokens } from '../middleware/operator-auth.ts';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { RequestIdVariables } from 'hono/request-id';
import { proxyRequest, type ProxyAnswer, type ProxyDeps } from '../../features/proxy/proxy-request.ts';
import { verifyAccessToken } from '../../core/mint/verify-access-token.ts';
import { ownKeys } from '../middleware/own-keys.ts';
import { DOT_SEGMENT_REFUSED, refuseDotSegments, targetAsSent, type RequestTarget } from '../middleware/dot-segments.ts';
import { NO_STORE, OAUTH_ERRORS } from '../oauth-errors.ts';
import { publicReasonName } from '../../core/errors/reasons.ts';
import type { BrokerMetrics } from '../../features/metrics/broker-metrics.ts';
import { requestContext } from '../request-context.ts';

type ProxyEnv = { Variables: RequestIdVariables };

export interface ProxyRouteDeps {
  readonly proxy: Omit<ProxyDeps, 'verifyKeywayToken'>;
  readonly clientIp: (c: Context) => string | undefined;
  /**
   * The request target exactly as the client sent it, where the runtime has it (Node: the request
   * line), so dot segments a URL parser would resolve are seen and refused; elsewhere the URL's text.
   */
  readonly requestTarget?: RequestTarget;
  /** Keeps the work an answer leaves running (its `done`) alive after it (Workers: waitUntil). */
  readonly background: (c: Context, task: Promise<void>) => void;
  /** Where every request a rate limit refused is counted, recorded or not. */
  readonly metrics: Pick<BrokerMetrics, 'rateLimited'>;
}

/** The header that marks keyway's own answers at `/proxy/…`; an upstream's answers never carry it. */
export const KEYWAY_ERROR_HEADER = 'Keyway-Error';
/** On an upstream's answer: the id of the decision record that let the request through. */
export const AUDIT_EVENT_HEADER = 'Keyway-Audit-Event-Id';

/** Why a target this route took is not `/proxy/…` as sent: `/proxy` itself (Hono routes it here too), or an absolute URL. */
function notAtAnUpstream(sent: string): string {
  return sent.startsWith('/')
    ? 'the request target names no upstream: send /proxy/{upstream}/{path}'
    : 'the request target is not /proxy/... as sent (an absolute URL)';
}

/**
 * `ANY /proxy/{upstream}/{path}` (docs/proxy.md): the caller's request made to a declared upstream
 * with keyway's credential, if a policy's `grant.proxy` allows it. keyway's own answers are
 * RFC 6749-style JSON with `Keyway-Error: <reason>`; the upstream's pass through without it.
 */
export function proxyRoutes(deps: ProxyRouteDeps, own: OwnTokens): Hono<ProxyEnv> {
  const routes = new Hono<ProxyEnv>();
  const keys = ownKeys(own.keys);
  const serve = async (c: Context<ProxyEnv>, dotSegments: boolean): Promise<Response> => {
    // Where the runtime hands over the request line (Node), its target must be the origin form `/proxy/…` as sent: an
    // absolute form (`http://host/proxy/…`) came to this route through a URL parser. Elsewhere (workerd) the URL holds
    // the target as sent, and is read as a string: a URL parser would resolve the dot segments the path check refuses.
    const sent = targetAsSent(c, deps.requestTarget);
    const originForm = sent.startsWith('/proxy/');
    const target = originForm ? sent : pathAndQuery(c.req.url);
    const queryAt = target.indexOf('?');
    const path = queryAt === -1 ? target : target.slice(0, queryAt);
    const query = queryAt === -1 ? '' : target.slice(queryAt + 1);
    const rest = path.slice('/proxy/'.length);
    const slash = rest.indexOf('/');
    const upstream = slash === -1 ? rest : rest.slice(0, slash);
    const rawPath = slash === -1 ? '/' : rest.slice(slash);
    const targetRefused = dotSegments ? DOT_SEGMENT_REFUSED : originForm ? undefined : notAtAnUpstream(sent);
    // A DPoP proof's htu is the URL the client addressed: this broker's origin and the path (RFC 9449 §4.3).
    const presented = (dpop: boolean) =>
      dpop ? { proof: c.req.header('dpop'), method: c.req.method, url: `${deps.proxy.issuer}${new URL(c.req.url).pathname}` } : undefined;
    const verifyKeywayToken: ProxyDeps['verifyKeywayToken'] = (token, audience, dpop) =>
      verifyAccessToken(token, { issuer: deps.proxy.issuer, audience, keys, dpopReplay: own.dpopReplay, now: own.now }, presented(dpop));
    const answer = await proxyRequest(
      { ...deps.proxy, verifyKeywayToken },
      {
        upstream,
        method: c.req.method,
        rawPath,
        query,
        ...(targetRefused === undefined ? {} : { targetRefused }),
        headers: c.req.raw.headers,
        body: c.req.raw.body,
        context: requestContext(c, deps.clientIp),
      },
    );
    if (answer.kind === 'refused' && answer.limited !== undefined) deps.metrics.rateLimited(answer.limited.limit, 'proxy');
    return respond(c, answer, deps.background);
  };
  // First among the app's routes, so before any route: a target with a dot segment is refused as sent, at /proxy/… by this route.
  routes.use(
    '*',
    refuseDotSegments(deps.requestTarget, (c) => serve(c, true)),
  );
  routes.all('/proxy/*', (c) => serve(c, false));
  return routes;
}

function pathAndQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

function respond(c: Context, answer: ProxyAnswer, background: ProxyRouteDeps['background']): Response {
  if (answer.kind !== 'unavailable' && answer.done !== undefined) background(c, answer.done);
  if (answer.kind === 'upstream') {
    // Which decision record made this call: the caller can quote it; it is no error marker.
    answer.response.headers.set(AUDIT_EVENT_HEADER, answer.auditEventId);
    return answer.response;
  }
  const spec = answer.kind === 'refused' ? OAUTH_ERRORS[answer.reason] : { status: 503, error: 'temporarily_unavailable' as const };
  const headers: Record<string, string> = {
    ...NO_STORE,
    ...('headers' in spec ? spec.headers : {}),
    [KEYWAY_ERROR_HEADER]: answer.kind === 'refused' ? publicReasonName(answer.reason) : 'audit_unavailable',
    ...(answer.kind === 'refused' && answer.limited?.retryAfterSeconds !== undefined ? { 'Retry-After': String(answer.limited.retryAfterSeconds) } : {}),
  };
  const body = {
    error: spec.error,
    error_description: answer.description,
    ...(answer.kind === 'refused' && answer.auditEventId !== undefined ? { audit_event_id: answer.auditEventId } : {}),
  };
  return c.json(body, spec.status as ContentfulStatusCode, headers);
}
