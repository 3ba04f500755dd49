import { request } from 'node:http';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { jsonLogger } from '../../src/core/log.ts';
import { INVISIBLE } from '../../src/core/inert-text.ts';
import { readLimitSettings } from '../../src/core/limits/limit-settings.ts';
import { nodeConfigFromEnv, type NodeBrokerConfig } from '../../src/config/node-config.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { parsePrometheusText } from '../support/prometheus-text.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { testConfig, writeTree } from './node-harness.ts';

/** GET /metrics with the Host header given (fetch sends its own): the status and the JSON body of a refusal. */
function scrapeWithHost(base: string, host: string): Promise<{ status: number; body: unknown }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const asked = request({ host: hostname, port, path: '/metrics', headers: { host } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: response.statusCode === 200 ? undefined : JSON.parse(text) }));
    });
    asked.on('error', reject);
    asked.end();
  });
}

describe('observability on Node', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  async function setup(overrides: Partial<NodeBrokerConfig> = {}) {
    const github = freshIssuer(inject('testIssuerBase'), 'obs-gh');
    const generic = freshIssuer(inject('testIssuerBase'), 'obs-oidc');
    const root = writeTree(Object.fromEntries(Object.entries(suitePolicies(github, generic)).map(([path, text]) => [`policies/${path}`, text])));
    const lines: string[] = [];
    const broker = await startNodeBroker(testConfig(root, overrides), { log: jsonLogger({}, { write: (line) => lines.push(line) }) });
    running.push(broker);
    const exchange = async (token: string, requestId?: string) => {
      const response = await fetch(`${broker.url}/token`, {
        method: 'POST',
        body: exchangeForm(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(requestId === undefined ? {} : { 'x-request-id': requestId }) },
      });
      return { status: response.status, requestId: response.headers.get('x-request-id'), body: (await response.json()) as Record<string, unknown> };
    };
    const scrape = async () => {
      const response = await fetch(`${broker.url}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      return parsePrometheusText(await response.text());
    };
    return {
      broker,
      github,
      generic,
      lines,
      exchange,
      scrape,
      good: (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.config.issuer, overrides)),
    };
  }

  it('counts exchanges by decision and reason, their latency, audit appends and JWKS fetches by exactly what was done', async () => {
    const { github, generic, exchange, scrape, good } = await setup();
    const before = await scrape();
    expect((await exchange(await good())).status).toBe(200);
    expect((await exchange(await good())).status).toBe(200);
    expect((await exchange(await good({ ref: 'refs/heads/feature' }))).status).toBe(400);
    expect((await exchange('not-a-token')).status).toBe(400);
    await generic.settings({ down: true });
    expect(
      (
        await exchange(
          await generic.sign({
            iss: generic.url,
            aud: 'https://keyway.test',
            sub: 'svc-b',
            iat: Math.floor(Date.now() / 1000),
            exp: Math.floor(Date.now() / 1000) + 300,
          }),
        )
      ).status,
    ).toBe(503);
    const after = await scrape();

    const delta = (sample: string): number => (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
    expect(delta('keyway_exchanges_total{decision="granted",reason="granted"}')).toBe(2);
    expect(delta('keyway_exchanges_total{decision="denied",reason="no_policy_matched"}')).toBe(1);
    expect(delta('keyway_exchanges_total{decision="malformed",reason="token_malformed"}')).toBe(1);
    expect(delta('keyway_exchanges_total{decision="error",reason="issuer_unavailable"}')).toBe(1);
    expect(delta('keyway_exchange_duration_seconds_count{decision="granted"}')).toBe(2);
    expect(delta('keyway_exchange_duration_seconds_bucket{decision="granted",le="+Inf"}')).toBe(2);
    expect(after.get('keyway_exchange_duration_seconds_sum{decision="granted"}')).toBeGreaterThan(0);
    expect(delta('keyway_audit_append_duration_seconds_count{outcome="ok"}')).toBe(5);
    // The keys are fetched once and cached; the issuer that is down costs one failed fetch.
    expect(delta(`keyway_jwks_fetches_total{issuer="${github.url}",outcome="ok"}`)).toBe(1);
    expect(delta(`keyway_jwks_fetches_total{issuer="${generic.url}",outcome="error"}`)).toBe(1);
    // Buckets are cumulative.
    const buckets = [...after].filter(([name]) => name.startsWith('keyway_exchange_duration_seconds_bucket{decision="granted"')).map(([, value]) => value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
  });

  it('counts every rate-limited request, though only the first of a run is audited and logged', async () => {
    const { lines, exchange, scrape, good } = await setup({
      limits: readLimitSettings({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '1' }),
    });
    const before = await scrape();
    const statuses = [];
    for (let attempt = 0; attempt < 4; attempt += 1) statuses.push((await exchange(await good())).status);
    expect(statuses).toEqual([200, 429, 429, 429]);
    const after = await scrape();
    const delta = (sample: string): number => (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
    expect(delta('keyway_rate_limited_total{limit="subject",endpoint="token"}')).toBe(3);
    expect(delta('keyway_exchanges_total{decision="denied",reason="rate_limited"}')).toBe(3);
    expect(delta('keyway_audit_append_duration_seconds_count{outcome="ok"}')).toBe(2);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record['message'] === 'token exchange');
    expect(logged.map((record) => [record['status'], record['limit']])).toEqual([
      [200, undefined],
      [429, 'subject'],
    ]);
  });

  it("counts a stranger's refusals past its account's budget, those answered without a record included, and logs only those recorded", async () => {
    const { lines, exchange, scrape, good } = await setup({
      limits: readLimitSettings({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '1' }),
    });
    const before = await scrape();
    const answers = [];
    for (let attempt = 0; attempt < 4; attempt += 1)
      answers.push(await exchange(await good({ repository_owner_id: '666', sub: `repo:mallory/x:ref:refs/heads/b${attempt}` })));
    // The same refusal every time; the budget's record, then the first of the run past it, then none.
    expect(answers.map(({ status, body }) => [status, body['error'], typeof body['audit_event_id']])).toEqual([
      [400, 'invalid_request', 'string'],
      [400, 'invalid_request', 'string'],
      [400, 'invalid_request', 'undefined'],
      [400, 'invalid_request', 'undefined'],
    ]);
    const after = await scrape();
    const delta = (sample: string): number => (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
    expect(delta('keyway_rate_limited_total{limit="tenant_refusals",endpoint="token"}')).toBe(3);
    expect(delta('keyway_exchanges_total{decision="denied",reason="no_policy_matched"}')).toBe(4);
    expect(delta('keyway_audit_append_duration_seconds_count{outcome="ok"}')).toBe(2);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record['message'] === 'token exchange');
    expect(logged.map((record) => [record['reason'], record['limit']])).toEqual([
      ['no_policy_matched', undefined],
      ['no_policy_matched', 'tenant_refusals'],
    ]);
  });

  it('counts the requests a rate limit refused at /proxy, /revoke and the operator APIs by endpoint, those answered without a record included', async () => {
    const { broker, scrape } = await setup({
      limits: readLimitSettings({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '2' }),
    });
    const proxy = async () => (await fetch(`${broker.url}/proxy/nope/x`)).status;
    const revoke = async () =>
      (await fetch(`${broker.url}/revoke`, { method: 'POST', body: 'token=not-a-token', headers: { 'content-type': 'application/x-www-form-urlencoded' } }))
        .status;
    const noToken = async () =>
      (
        await fetch(`${broker.url}/revoke`, {
          method: 'POST',
          body: 'token_type_hint=access_token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status;
    const operator = async () => (await fetch(`${broker.url}/v1/audit/alerts`, { headers: { authorization: 'Bearer not-a-token' } })).status;
    const before = await scrape();
    // The chain's budget of two records of refusals nobody verified, then the unverified limit's run: its first recorded, the rest not.
    expect([await proxy(), await proxy(), await proxy(), await proxy()]).toEqual([401, 401, 429, 429]);
    // Past it a holder's /revoke of a token that is not live is answered alike, but its record is the limit's: none, mid-run.
    expect([await revoke(), await revoke()]).toEqual([200, 200]);
    // A stranger's /revoke that holds no token is refused, and past the budget the refusal is the limit's 429.
    expect([await noToken(), await noToken()]).toEqual([429, 429]);
    // And an operator API's refusal of a credential, past the budget, is the limit's 429.
    expect([await operator(), await operator()]).toEqual([429, 429]);
    const after = await scrape();
    const delta = (sample: string): number => (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
    expect(delta('keyway_rate_limited_total{limit="unverified",endpoint="proxy"}')).toBe(2);
    expect(delta('keyway_rate_limited_total{limit="unverified",endpoint="revoke"}')).toBe(4);
    expect(delta('keyway_rate_limited_total{limit="unverified",endpoint="operator"}')).toBe(2);
    expect(delta('keyway_rate_limited_total{limit="unverified",endpoint="token"}')).toBe(0);

    // A holder's /revoke shed by the per-client limit before its body is read: no record at all, counted all the same.
    const shed = await setup({ limits: readLimitSettings({ KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '1' }) });
    const shedRevoke = async () =>
      (
        await fetch(`${shed.broker.url}/revoke`, {
          method: 'POST',
          body: 'token=not-a-token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status;
    expect([await shedRevoke(), await shedRevoke(), await shedRevoke()]).toEqual([200, 429, 429]);
    expect((await shed.scrape()).get('keyway_rate_limited_total{limit="client",endpoint="revoke"}')).toBe(2);
  });

  it('logs one JSON line per exchange with its request id, and never a token', async () => {
    const { lines, exchange, good } = await setup();
    const subjectTokens = [await good(), await good({ ref: 'refs/heads/feature' })];
    const granted = await exchange(subjectTokens[0] as string, 'deploy-run-9001');
    const denied = await exchange(subjectTokens[1] as string);
    expect(granted.requestId).toBe('deploy-run-9001');
    const accessToken = granted.body['access_token'] as string;
    expect(accessToken).toMatch(/^eyJ/);

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const exchanges = records.filter((record) => record['message'] === 'token exchange');
    expect(exchanges).toEqual([
      expect.objectContaining({
        level: 'info',
        request_id: 'deploy-run-9001',
        status: 200,
        decision: 'granted',
        reason: 'granted',
        audit_event_id: granted.body['audit_event_id'],
        subject: 'repo:acme/api:environment:production',
        policy: 'deploy/production',
        client_ip: '127.0.0.1',
      }),
      expect.objectContaining({
        level: 'info',
        request_id: denied.requestId,
        status: 400,
        decision: 'denied',
        reason: 'no_policy_matched',
        audit_event_id: denied.body['audit_event_id'],
      }),
    ]);
    expect(exchanges[0]?.['duration_ms']).toBeTypeOf('number');
    expect(exchanges[0]?.['audit_ms']).toBeTypeOf('number');
    expect(records.some((record) => record['message'] === 'jwks fetch' && record['outcome'] === 'ok')).toBe(true);

    const logged = lines.join('\n');
    for (const token of [...subjectTokens, accessToken]) {
      for (const part of token.split('.').filter((segment) => segment.length > 20)) expect(logged).not.toContain(part);
    }
  });

  it('writes a subject its pipeline chose as a line a terminal shows as it is: an override or separator as a \\u escape, the same value parsed', async () => {
    const { lines, exchange, good } = await setup();
    // A pipeline's verified subject is logged with its exchange: a right-to-left override shows `repo:acme/dorp` as
    // `repo:acme/prod` in `journalctl` or `less`, a line separator breaks the line there, an 8-bit CSI starts an escape.
    const subject = 'repo:acme/api:environment:\u202edorp\u2028\u009b2K';
    const answered = await exchange(await good({ sub: subject }));
    const [line] = lines.filter((text) => text.includes('"token exchange"'));
    expect(line).toContain('repo:acme/api:environment:\\u202edorp\\u2028\\u009b2K');
    expect(line).not.toMatch(INVISIBLE);
    expect(JSON.parse(String(line))).toMatchObject({ audit_event_id: answered.body['audit_event_id'], subject });
  });

  it('keeps a token that slips into a log message out of the line', () => {
    const lines: string[] = [];
    jsonLogger({}, { write: (line) => lines.push(line) }).error('unexpected', {
      error: 'TypeError: bad eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here',
    });
    expect(lines[0]).toContain('[redacted token] here');
    expect(lines[0]).not.toContain('eyJzdWIiOiJ4In0');
  });

  it('serves /metrics to loopback callers that came through no proxy and name a loopback Host, or to the bearer of KEYWAY_METRICS_TOKEN', async () => {
    const open = await setup();
    expect((await fetch(`${open.broker.url}/metrics`)).status).toBe(200);
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
      const proxied = await fetch(`${open.broker.url}/metrics`, { headers: { [header]: '203.0.113.9' } });
      expect(proxied.status).toBe(403);
      expect(await proxied.json()).toMatchObject({ error: 'forbidden' });
    }
    // A browser on this host, on a page whose name rebinds to 127.0.0.1 (DNS rebinding): loopback, no forwarding header,
    // but its own name as Host. Only a loopback name is this host.
    const port = new URL(open.broker.url).port;
    for (const host of [`rebind.attacker.example:${port}`, 'rebind.attacker.example', `localhost.attacker.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
      expect(await scrapeWithHost(open.broker.url, host), host).toEqual({ status: 403, body: { error: 'forbidden', error_description: expect.any(String) } });
    }
    for (const host of [`localhost:${port}`, 'LOCALHOST', `127.0.0.1:${port}`, '127.1.2.3', `[::1]:${port}`]) {
      expect((await scrapeWithHost(open.broker.url, host)).status, host).toBe(200);
    }

    const secret = 'm'.repeat(40);
    const guarded = await setup({ metricsToken: secret });
    const scrape = (authorization?: string) => fetch(`${guarded.broker.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
    const missing = await scrape();
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(missing.headers.get('cache-control')).toBe('no-store');
    expect((await scrape(`Bearer ${'x'.repeat(40)}`)).status).toBe(401);
    expect((await scrape(`Basic ${secret}`)).status).toBe(401);
    const allowed = await scrape(`Bearer ${secret}`);
    expect(allowed.status).toBe(200);
    expect(parsePrometheusText(await allowed.text()).get('keyway_rate_limited_total{limit="subject",endpoint="token"}')).toBe(0);

    expect(() => nodeConfigFromEnv({ KEYWAY_METRICS_TOKEN: 'short' })).toThrow(ConfigError);
    expect(nodeConfigFromEnv({ KEYWAY_METRICS_TOKEN: secret }).metricsToken).toBe(secret);
  });
});
