import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import ipaddr from 'ipaddr.js';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from '../../features/metrics/registry.ts';

/** Headers a reverse proxy adds: behind one, the socket's loopback address says nothing about the caller. */
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'cf-connecting-ip', 'true-client-ip'];

/**
 * `GET /metrics` in the Prometheus text format. With a token (KEYWAY_METRICS_TOKEN), only for
 * `Authorization: Bearer <token>`; without one, only for loopback callers that came through no
 * proxy.
 */
export function metricsRoute(registry: MetricsRegistry, token: string | undefined, clientIp: (c: Context) => string | undefined): Hono {
  const expected = token === undefined ? undefined : digest(token);
  const route = new Hono();
  route.get('/', (c) => {
    if (expected !== undefined) {
      const presented = /^Bearer ([^\s]+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
      if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
        c.header('WWW-Authenticate', 'Bearer realm="keyway metrics"');
        return c.json({ error: 'invalid_token', error_description: 'GET /metrics needs Authorization: Bearer with KEYWAY_METRICS_TOKEN' }, 401);
      }
    } else if (!isLoopback(clientIp(c)) || FORWARDING_HEADERS.some((name) => c.req.header(name) !== undefined)) {
      return c.json({ error: 'forbidden', error_description: 'GET /metrics is served to loopback callers only unless KEYWAY_METRICS_TOKEN is set' }, 403);
    }
    return c.body(registry.exposition(), 200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  });
  return route;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && ipaddr.isValid(address) && ipaddr.process(address).range() === 'loopback';
}
