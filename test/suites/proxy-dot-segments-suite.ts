import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';

/** A request's method, headers and body, beside its target. */
export interface AsSentInit {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** A broker that takes a request target exactly as a client wrote it on the request line. */
export interface AsSentBroker {
  send(target: string, init?: AsSentInit): Promise<Response>;
  auditEvent(id: string): Promise<AuditEvent | undefined>;
  close(): Promise<void>;
}

/**
 * Dot segments at /proxy/ are refused as sent, the same on every runtime (`moreAtProxy`: targets only this runtime takes): Node's server resolves them before routing
 * (`/proxy/../v1/…` reached /v1/…), workerd hands the target over as sent (`/x/../proxy/…` reached no route, and
 * `/proxy/vendor/a/../b` was resolved by keyway itself before its path check).
 */
export function proxyDotSegmentsSuite(runtime: string, start: () => Promise<AsSentBroker>, moreAtProxy: readonly string[] = []): void {
  describe(`dot segments at /proxy/ on ${runtime}`, () => {
    it.each([
      ...moreAtProxy,
      '/proxy/../v1/audit/events',
      '/proxy/%2e%2e/v1/audit/events',
      '/proxy/vendor/../../token',
      '/proxy/vendor/%2E%2e/%2e%2E/v1/inventory',
      '/x/../proxy/vendor/repos/acme/api/issues',
      '/./proxy/vendor/repos/acme/api/issues',
      '/proxy/vendor/repos/acme/api/../infra/issues',
      '/proxy/vendor/repos/acme/api/.%2e/infra/issues?per_page=1',
    ])('refuses %s with 400 proxy_path_refused and a record, whichever route it resolves to', async (target) => {
      const broker = await start();
      try {
        const response = await broker.send(target);
        const body = (await response.json()) as Record<string, unknown>;
        expect(response.status, JSON.stringify(body)).toBe(400);
        expect(response.headers.get('keyway-error')).toBe('proxy_path_refused');
        expect(body).toMatchObject({ error: 'invalid_request' });
        expect(body['error_description']).toContain('a . or .. segment');
        const event = await broker.auditEvent(body['audit_event_id'] as string);
        expect(event).toMatchObject({ decision: 'malformed', reason: 'proxy_path_refused' });
      } finally {
        await broker.close();
      }
    });
  });
  describe(`dot segments before any route on ${runtime}`, () => {
    // Node's server resolves these to a route (`/x/../token` was /token), workerd routes them nowhere: a front that lets paths
    // through by prefix (`/x/` yes, `/token` or `/v1/` no) was walked past on Node only.
    it.each([
      ['GET', '/v1/./audit/events'],
      ['GET', '/v1/x/../audit/events?limit=1'],
      ['GET', '/v1/%2E/inventory'],
      ['POST', '/x/../token'],
      ['POST', '/%2e%2e/token'],
      ['POST', '/.well-known/../token'],
      ['POST', '/x/.%2E/revoke'],
      // Last in the target, or after a name that begins like /proxy/ without being it.
      ['GET', '/v1/audit/events/.'],
      ['POST', '/proxy-old/../token'],
    ])('refuses %s %s with 400 invalid_request before any route, as sent', async (method, target) => {
      const broker = await start();
      try {
        const response = await broker.send(target, {
          method,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          ...(method === 'POST' ? { body: 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange' } : {}),
        });
        const body = (await response.json()) as Record<string, unknown>;
        expect(response.status, JSON.stringify(body)).toBe(400);
        expect(body).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('a . or .. segment') });
        expect(response.headers.get('cache-control')).toBe('no-store');
      } finally {
        await broker.close();
      }
    });

    it.each(['/.well-known/openid-configuration', '/.well-known/openid-configuration?next=/../token'])(
      'serves a dot inside a segment, and dots in the query: %s',
      async (target) => {
        const broker = await start();
        try {
          const response = await broker.send(target);
          expect(response.status).toBe(200);
          expect(await response.json()).toHaveProperty('jwks_uri');
        } finally {
          await broker.close();
        }
      },
    );

    it('takes dots that are no whole segment of one or two to their route, which asks for a credential: they resolve to nothing', async () => {
      const broker = await start();
      try {
        for (const target of ['/v1/audit/events/x..', '/v1/audit/events/..x', '/v1/audit/events/...', '/v1/audit/events/%2e%2e%2e']) {
          const response = await broker.send(target);
          expect(response.status, `${target}: ${await response.text()}`).toBe(401);
        }
      } finally {
        await broker.close();
      }
    });
  });
}
