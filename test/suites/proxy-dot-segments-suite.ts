import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';

/** A broker that takes a request target exactly as a client wrote it on the request line. */
export interface AsSentBroker {
  send(target: string): Promise<Response>;
  auditEvent(id: string): Promise<AuditEvent | undefined>;
  close(): Promise<void>;
}

/**
 * Dot segments at /proxy/ are refused as sent, the same on every runtime: Node's server resolves them before routing
 * (`/proxy/../v1/…` reached /v1/…), workerd hands the target over as sent (`/x/../proxy/…` reached no route, and
 * `/proxy/vendor/a/../b` was resolved by keyway itself before its path check).
 */
export function proxyDotSegmentsSuite(runtime: string, start: () => Promise<AsSentBroker>): void {
  describe(`dot segments at /proxy/ on ${runtime}`, () => {
    it.each([
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
}
