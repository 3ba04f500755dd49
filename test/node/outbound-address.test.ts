import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_BOUNDS } from '../../src/core/audit/bound-audit-event.ts';
import { outboundHttp } from '../../src/core/outbound/outbound-http.ts';
import { DEFAULT_JWKS_CACHE_POLICY, JwksCache } from '../../src/core/verify/jwks-cache.ts';
import { ForbiddenAddressError } from '../../src/core/outbound/outbound-address.ts';
import { publicAddressFetch } from '../../src/runtimes/node/public-address-fetch.ts';
import { exchangeForm, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

interface CountingServer {
  readonly server: Server;
  readonly port: number;
  readonly base: string;
  connections(): number;
}

/** A loopback HTTP server that counts every connection made to it, TLS attempts included. */
async function countingServer(answer: (base: string) => unknown = () => ({ ok: true })): Promise<CountingServer> {
  let connections = 0;
  let base = '';
  const server = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(answer(base)));
  });
  server.on('connection', () => (connections += 1));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  return { server, port, base, connections: () => connections };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

/** A policy granting `svc-b` of `issuer`. */
const serviceOf = (issuer: string): string => `version: 1\nissuer: "${issuer}"\nmatch: { sub: svc-b }\ngrant: { audience: https://b.example }\n`;

/** A well-formed RS256 JWT whose signature is never checked: refusals here come before verification. */
function unverifiedToken(iss: string, aud: string): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: unknown) => base64url.encode(JSON.stringify(value));
  return `${part({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${part({ iss, aud, sub: 'svc-b', iat: now, exp: now + 300 })}.${part('signature')}`;
}

describe('outbound connections on Node', () => {
  let target: CountingServer;
  beforeAll(async () => {
    target = await countingServer();
  });
  afterAll(() => closeServer(target.server));

  it('refuses loopback without the development switch, by literal address and by the address a name resolves to, before connecting', async () => {
    const refusing = publicAddressFetch(false);
    const hosts = ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]'];
    for (const url of [...hosts.map((host) => `https://${host}:${target.port}/`), `http://localhost:${target.port}/`]) {
      await expect(refusing(url)).rejects.toThrow(ForbiddenAddressError);
    }
    await expect(refusing(`https://localhost:${target.port}/`)).rejects.toThrow(/^localhost resolves to 127\.0\.0\.1 is in the loopback range/);
    expect(target.connections()).toBe(0);

    const developing = publicAddressFetch(true);
    const answer = await developing(`http://localhost:${target.port}/jwks`, { headers: { accept: 'application/json' } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ ok: true });
    expect(target.connections()).toBe(1);
  });

  describe('through the broker', () => {
    let broker: BrokerHarness;
    let issuerUrl: string;
    beforeAll(async () => {
      issuerUrl = `https://localhost:${target.port}/ci`;
      broker = await startNodeHarness({ 'localhost/service.yaml': serviceOf(issuerUrl) }, { settings: { KEYWAY_ALLOW_HTTP_LOOPBACK: '0' } });
    });
    afterAll(() => broker.close());

    it('answers an issuer whose name resolves to loopback with 503 and an audit record, and never connects to it', async () => {
      const before = target.connections();
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const result = await postToken(broker, exchangeForm(unverifiedToken(issuerUrl, broker.issuer)));
        expect(result.status).toBe(503);
        expect(result.body['error']).toBe('temporarily_unavailable');
        expect(result.body).not.toHaveProperty('access_token');
        const event = await broker.auditEvent(result.body['audit_event_id'] as string);
        expect(event).toMatchObject({ decision: 'error', reason: 'issuer_unavailable' });
        expect(event?.detail).toMatch(/localhost resolves to 127\.0\.0\.1 is in the loopback range/);
      }
      expect(target.connections()).toBe(before);
    });
  });

  it('keeps and logs a bounded reason for a failing issuer, however much its server sent', async () => {
    const chatty = await countingServer(() => ({ issuer: 'x'.repeat(200_000), jwks_uri: 'https://keys.example/jwks' }));
    const logged: string[] = [];
    const cache = new JwksCache(outboundHttp(publicAddressFetch(true), true), DEFAULT_JWKS_CACHE_POLICY, Date.now, (event) => logged.push(event.error ?? ''));
    try {
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const failure = cache.keysFor(`${chatty.base}/ci`);
        await expect(failure).rejects.toThrow(/names issuer "xxxx/);
        expect((await failure.catch((error: Error) => error.message)).length).toBeLessThan(AUDIT_BOUNDS.detail + 200);
      }
      expect(chatty.connections()).toBe(1);
      expect(logged).toHaveLength(1);
      expect(logged[0]?.length).toBeLessThanOrEqual(AUDIT_BOUNDS.detail);
    } finally {
      await closeServer(chatty.server);
    }
  });

  it('refuses a jwks_uri written as a non-public address, even with loopback allowed: 0.0.0.0 reaches this machine', async () => {
    const discovery = await countingServer((base) => ({ issuer: `${base}/ci`, jwks_uri: `https://0.0.0.0:${target.port}/jwks` }));
    const issuer = `${discovery.base}/ci`;
    const broker = await startNodeHarness({ 'unspecified/service.yaml': serviceOf(issuer) });
    try {
      const before = target.connections();
      const result = await postToken(broker, exchangeForm(unverifiedToken(issuer, broker.issuer)));
      expect(result.status).toBe(503);
      expect(result.body['error']).toBe('temporarily_unavailable');
      expect(result.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event).toMatchObject({ decision: 'error', reason: 'issuer_unavailable' });
      expect(event?.detail).toMatch(/0\.0\.0\.0 is in the unspecified range/);
      expect(discovery.connections()).toBe(1);
      expect(target.connections()).toBe(before);
    } finally {
      await broker.close();
      await closeServer(discovery.server);
    }
  });
});
