import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { INBOUND_LIMITS } from '../../src/node/start-node-broker.ts';
import { exchangeForm, freshIssuer, GRANT_TYPE, suitePolicies, type BrokerHarness } from '../suites/exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

/** Raw HTTP/1.1 over a socket: what a hostile client sends, not what fetch would. Resolves with the first response's head, or 'closed'. */
function raw(url: string, send: (socket: ReturnType<typeof connect>) => void): Promise<{ head: string; elapsedMs: number }> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => send(socket));
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve({ head: received.split('\r\n')[0] ?? 'closed', elapsedMs: Date.now() - started }));
  });
}

describe('inbound bounds on Node', () => {
  let broker: BrokerHarness;
  let url: string;
  beforeAll(async () => {
    broker = await startNodeHarness(suitePolicies(freshIssuer(inject('testIssuerBase'), 'bounds-gh'), freshIssuer(inject('testIssuerBase'), 'bounds-oidc')));
    url = (await broker.request('/healthz')).url.replace('/healthz', '');
  });
  afterAll(() => broker.close());

  it('answers 431 to request headers over 16 KiB', async () => {
    const response = await broker.request('/token', { method: 'POST', body: exchangeForm('a.b.c'), headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-padding': 'x'.repeat(INBOUND_LIMITS.maxHeaderSize) } });
    expect(response.status).toBe(431);
  });

  it('answers 413 to a chunked body over 64 KiB that declares no length, and records it', async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`grant_type=${encodeURIComponent(GRANT_TYPE)}&pad=`));
        for (let index = 0; index < 20; index += 1) controller.enqueue(new TextEncoder().encode('x'.repeat(8192)));
        controller.close();
      },
    });
    const response = await broker.request('/token', { method: 'POST', body: chunks, duplex: 'half', headers: { 'content-type': 'application/x-www-form-urlencoded' } } as RequestInit);
    expect(response.status).toBe(413);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'invalid_request' });
    expect((await broker.auditEvent(body['audit_event_id'] as string))?.reason).toBe('request_too_large');
  });

  it('takes a well-formed X-Request-Id up to 128 characters and replaces a longer or odd one', async () => {
    const post = (id: string) => broker.request('/token', { method: 'POST', body: exchangeForm('a.b.c'), headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': id } });
    expect((await post('job-42')).headers.get('x-request-id')).toBe('job-42');
    for (const id of ['r'.repeat(129), 'line\tbreak', '<script>']) {
      const response = await post(id);
      expect(response.headers.get('x-request-id')).not.toBe(id);
      const recorded = await broker.auditEvent(((await response.json()) as Record<string, string>)['audit_event_id'] as string);
      expect(recorded?.request.id).toBe(response.headers.get('x-request-id'));
    }
  });

  it(
    'cuts off a client that never finishes its headers with 408',
    async () => {
      const { head, elapsedMs } = await raw(url, (socket) => socket.write('POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n'));
      expect(head).toBe('HTTP/1.1 408 Request Timeout');
      expect(elapsedMs).toBeGreaterThanOrEqual(INBOUND_LIMITS.headersTimeout - 100);
      expect(elapsedMs).toBeLessThan(INBOUND_LIMITS.headersTimeout + 2 * INBOUND_LIMITS.connectionsCheckingInterval + 1000);
    },
    INBOUND_LIMITS.headersTimeout + 10_000,
  );
});
