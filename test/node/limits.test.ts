import { once } from 'node:events';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { exchangeForm, freshIssuer, suitePolicies, type BrokerHarness } from '../suites/exchange-suite.ts';
import { limitsSuite } from '../suites/limits-suite.ts';
import { BROKER_ISSUER, startNodeHarness } from './node-harness.ts';

limitsSuite('Node', startNodeHarness, () => inject('testIssuerBase'), BROKER_ISSUER);

describe('the client address behind a reverse proxy (Node)', () => {
  const running: BrokerHarness[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  /** A broker whose per-client limit lets one request through per client, then refuses (the clock never moves). */
  async function setup(settings: Record<string, string>) {
    const issuerBase = inject('testIssuerBase');
    const clock = Date.now();
    const broker = await startNodeHarness(suitePolicies(freshIssuer(issuerBase, 'proxy-gh'), freshIssuer(issuerBase, 'proxy-oidc')), {
      settings: { KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '1', ...settings },
      now: () => clock,
    });
    running.push(broker);
    /** A malformed exchange (answered 400 and audited) from 127.0.0.1, with these headers. */
    const send = async (headers: Record<string, string>) => {
      const response = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm('a.b.c'),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(body).not.toHaveProperty('access_token');
      const record = await broker.auditEvent(body['audit_event_id'] as string);
      return { status: response.status, reason: record?.reason, clientIp: record?.request.client_ip };
    };
    return { send, broker };
  }

  it("warns at start when a trusted proxy is an address the host's own processes connect from: loopback, its interfaces', Docker's bridge gateway", async () => {
    const startWith = async (trusted: string) => {
      const warned: string[] = [];
      const log = { info: () => {}, error: () => {}, warn: (message: string, fields?: object) => void warned.push(`${message} ${JSON.stringify(fields)}`) };
      running.push(
        await startNodeHarness(suitePolicies(freshIssuer(inject('testIssuerBase'), 'warn-gh'), freshIssuer(inject('testIssuerBase'), 'warn-oidc')), {
          settings: { KEYWAY_TRUSTED_PROXIES: trusted },
          log,
        }),
      );
      return warned.filter((line) => line.startsWith("KEYWAY_TRUSTED_PROXIES trusts an address of this host's own processes"));
    };
    expect(await startWith('127.0.0.1')).toEqual([expect.stringContaining('{"trusted":["127.0.0.1/32"]}')]);
    expect(await startWith('198.51.100.0/24, ::1')).toEqual([expect.stringContaining('{"trusted":["::1/128"]}')]);
    expect(await startWith('0.0.0.0/1')).toHaveLength(1);
    // All of 127/8 is loopback: a local process may connect from 127.0.0.2, which no interface names.
    expect(await startWith('127.0.0.2')).toEqual([expect.stringContaining('{"trusted":["127.0.0.2/32"]}')]);
    // A process that connects to one of the host's own addresses comes from it, as it would from 127.0.0.1; in a
    // container, the host's processes come from Docker's bridge gateway.
    const own = Object.values(networkInterfaces())
      .flatMap((addresses) => addresses ?? [])
      .find((address) => !address.internal && address.family === 'IPv4');
    expect(own, 'a host with an address beyond loopback').toBeDefined();
    const ownRange = `${own!.address.split('.').slice(0, 3).join('.')}.0/24`;
    expect(await startWith(`${own!.address}, 198.51.100.7`)).toEqual([expect.stringContaining(`{"trusted":["${own!.address}/32"]}`)]);
    expect(await startWith(ownRange)).toEqual([expect.stringContaining(`{"trusted":["${ownRange}"]}`)]);
    expect(await startWith('172.16.0.0/12')).toEqual([expect.stringContaining('{"trusted":["172.16.0.0/12"]}')]);
    expect(await startWith('198.51.100.0/24, 203.0.113.9, 2001:db8::/32')).toEqual([]);
  });

  it('ignores X-Forwarded-For and Forwarded from a peer that is not a trusted proxy: one bucket, the socket address in the audit record', async () => {
    const { send } = await setup({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/8' });
    expect(await send({ 'x-forwarded-for': '198.51.100.1' })).toEqual({ status: 400, reason: 'token_malformed', clientIp: '127.0.0.1' });
    // Another spoofed address buys no fresh bucket.
    const spoofed = await send({ 'x-forwarded-for': '198.51.100.2', forwarded: 'for=198.51.100.3' });
    expect(spoofed).toEqual({ status: 429, reason: 'rate_limited', clientIp: '127.0.0.1' });
  });

  it('from a trusted proxy, keys the rate limit and the audit record on the client it names', async () => {
    const { send } = await setup({ KEYWAY_TRUSTED_PROXIES: '127.0.0.1' });
    // The client wrote 1.1.1.1 itself; the proxy appended the address it saw.
    expect(await send({ 'x-forwarded-for': '1.1.1.1, 198.51.100.1' })).toEqual({ status: 400, reason: 'token_malformed', clientIp: '198.51.100.1' });
    expect(await send({ 'x-forwarded-for': '198.51.100.2' })).toEqual({ status: 400, reason: 'token_malformed', clientIp: '198.51.100.2' });
    // One client's flood does not lock out another behind the same proxy.
    expect(await send({ 'x-forwarded-for': '198.51.100.1' })).toEqual({ status: 429, reason: 'rate_limited', clientIp: '198.51.100.1' });
  });

  it('skips every trusted proxy of a chain, and falls back to the peer on a malformed header', async () => {
    const { send } = await setup({ KEYWAY_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8, 192.0.2.1' });
    expect(await send({ 'x-forwarded-for': '203.0.113.7, 192.0.2.1, 10.0.0.5' })).toMatchObject({ status: 400, clientIp: '203.0.113.7' });
    expect(await send({ 'x-forwarded-for': '203.0.113.8, not-an-address' })).toMatchObject({ status: 400, clientIp: '127.0.0.1' });
    expect(await send({ 'x-forwarded-for': '' })).toMatchObject({ status: 429, clientIp: '127.0.0.1' });
  });

  it('reads RFC 7239 Forwarded instead when the proxies write that, and then never X-Forwarded-For', async () => {
    const { send } = await setup({ KEYWAY_TRUSTED_PROXIES: '127.0.0.1', KEYWAY_TRUSTED_PROXY_HEADER: 'forwarded' });
    const both = await send({ forwarded: 'for=1.1.1.1, for="[2001:db8:1::77]:4711";proto=https', 'x-forwarded-for': '198.51.100.9' });
    expect(both).toMatchObject({ status: 400, clientIp: '2001:db8:1::77' });
    expect(await send({ 'x-forwarded-for': '198.51.100.9' })).toMatchObject({ status: 400, clientIp: '127.0.0.1' });
  });

  it("keeps the client a proxy appended to Forwarded when the client's own part is malformed: it cannot pass as the proxy", async () => {
    const { send } = await setup({ KEYWAY_TRUSTED_PROXIES: '127.0.0.1', KEYWAY_TRUSTED_PROXY_HEADER: 'forwarded' });
    // The client sent `Forwarded: for="198.51.100.66` (a quote left open); the proxy appended the address it saw.
    expect(await send({ forwarded: 'for="198.51.100.66, for=198.51.100.5' })).toEqual({ status: 400, reason: 'token_malformed', clientIp: '198.51.100.5' });
    expect(await send({ forwarded: 'garbage, for=198.51.100.6' })).toEqual({ status: 400, reason: 'token_malformed', clientIp: '198.51.100.6' });
  });

  it('keys the limit and the audit record on the peer of a client that resets its connection right after its request', async () => {
    const { send, broker } = await setup({});
    const { port } = new URL((await broker.request('/livez')).url);
    // Each request sent whole, then the connection reset (RST) before the broker answers: the answer is never read.
    for (let index = 0; index < 3; index += 1) {
      const socket = connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      socket.on('error', () => undefined);
      socket.write('GET /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      socket.resetAndDestroy();
      await once(socket, 'close');
    }
    await vi.waitFor(async () => expect((await broker.recentAuditEvents()).length).toBeGreaterThanOrEqual(2), { timeout: 5000 });
    // The first spent the client's one request, the rest its limit's: the first of that run recorded, the others not.
    const recorded = (await broker.recentAuditEvents()).map((event) => [event.reason, event.request.client_ip]);
    expect(recorded).toEqual([
      ['rate_limited', '127.0.0.1'],
      ['method_not_allowed', '127.0.0.1'],
    ]);
    expect(await send({})).toEqual({ status: 429, reason: undefined, clientIp: undefined });
  });
});
