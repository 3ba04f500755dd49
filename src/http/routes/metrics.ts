import { Hono, type Context } from 'hono';
import ipaddr from 'ipaddr.js';
import { isLoopbackHost } from '../../core/outbound/loopback-http-url.ts';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from '../../features/metrics/registry.ts';
import { staticBearer } from '../middleware/static-bearer.ts';

/** Headers a reverse proxy adds: behind one, the socket's loopback address says nothing about the caller. */
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'cf-connecting-ip', 'true-client-ip'];

/**
 * `GET /metrics` in the Prometheus text format. With a token (KEYWAY_METRICS_TOKEN), only for
 * `Authorization: Bearer <token>`; without one, only for loopback callers that came through no
 * proxy and name this host by a loopback name (Host: localhost, 127.0.0.0/8, [::1]). The Host
 * check is what keeps a browser on the host out: a page of another site whose name it rebinds to
 * 127.0.0.1 (DNS rebinding) connects from loopback with no forwarding header, but sends its own
 * name as Host.
 */
export function metricsRoute(registry: MetricsRegistry, token: string | undefined, clientIp: (c: Context) => string | undefined): Hono {
  const authorized = staticBearer(token);
  const route = new Hono();
  route.get('/', async (c) => {
    if (authorized !== undefined) {
      if (!(await authorized(c.req.header('authorization')))) {
        c.header('WWW-Authenticate', 'Bearer realm="keyway metrics"');
        return c.json({ error: 'invalid_token', error_description: 'GET /metrics needs Authorization: Bearer with KEYWAY_METRICS_TOKEN' }, 401);
      }
    } else if (!isLoopback(clientIp(c)) || FORWARDING_HEADERS.some((name) => c.req.header(name) !== undefined) || !isLoopbackHostHeader(c.req.header('host'))) {
      return c.json({ error: 'forbidden', error_description: 'GET /metrics is served to loopback callers only unless KEYWAY_METRICS_TOKEN is set' }, 403);
    }
    return c.body(registry.exposition(), 200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  });
  return route;
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && ipaddr.isValid(address) && ipaddr.process(address).range() === 'loopback';
}

/** A Host header (name, then an optional port) naming this host: localhost, an address in 127.0.0.0/8, [::1]. No header, or anything else, is not. */
function isLoopbackHostHeader(host: string | undefined): boolean {
  const name = host === undefined ? undefined : /^(\[[0-9A-Fa-f:.]+\]|[^:[\]@/?#\s]+)(?::\d*)?$/.exec(host)?.[1]?.toLowerCase();
  if (name === undefined) return false;
  return isLoopbackHost(name) || isLoopback(name.startsWith('[') ? name.slice(1, -1) : name);
}
