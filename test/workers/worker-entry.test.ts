import { createExecutionContext, runInDurableObject } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { describe, expect, inject, it, vi } from 'vitest';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { allRecords } from '../../src/core/audit/all-records.ts';
import { verifyAuditLog } from '../../src/core/audit/verify-chain.ts';
import { ShardedAuditLog } from '../../src/core/audit/sharded-audit-log.ts';
import bundledPolicies from '../../build/policies.json';
import { HEALTH_READ_SCOPE } from '../../src/http/routes/health.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { auditorToken, operatorPolicy } from '../suites/audit-api-suite.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { sharedAuditShardObjects, sharedAuditShards, startWorkersHarness, workerEnv } from './workers-harness.ts';

const entry = (exports as unknown as { default: Fetcher }).default;

describe('the deployed Worker entry', () => {
  it('serves the bundled policies, and tells strangers only that it is up', async () => {
    const response = await entry.fetch('https://keyway.test/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers anyone /livez and /readyz with `ok`, and nothing else', async () => {
    for (const path of ['/livez', '/readyz']) {
      const response = await entry.fetch(`https://keyway.test${path}`);
      expect([response.status, await response.text(), response.headers.get('cache-control'), response.headers.get('x-content-type-options')]).toEqual([
        200,
        'ok',
        'no-store',
        'nosniff',
      ]);
    }
  });

  it('bundles only what a fresh deployment needs: the dev quickstart and auditor, inactive at the edge, and no example policy', async () => {
    expect(bundledPolicies.map((file) => file.path)).toEqual(['dev/auditor.yaml', 'dev/quickstart.yaml']);
    // An operator (here with a policy of their own beside the bundle) reads at /v1/health that nothing of the bundle is active.
    const people = freshIssuer(inject('testIssuerBase'), 'w-entry-ops');
    const files = Object.fromEntries(bundledPolicies.map((file) => [file.path, file.text]));
    const broker = await startWorkersHarness({
      ...files,
      'ops/olga.yaml': operatorPolicy(people, workerEnv.KEYWAY_ISSUER, 'olga@acme.dev', [HEALTH_READ_SCOPE]),
    });
    const token = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
    const health = await broker.request('/v1/health', { headers: { authorization: `Bearer ${token}` } });
    expect(await health.json()).toEqual({ status: 'ok', policies: 1, inactive_policies: 2 });
  });

  it('audits a malformed request in the Durable Object before answering', async () => {
    const response = await entry.fetch('https://keyway.test/token', {
      method: 'POST',
      body: 'grant_type=nope',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '203.0.113.9' },
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; audit_event_id: string };
    expect(body.error).toBe('unsupported_grant_type');
    expect(await new ShardedAuditLog(sharedAuditShards()).get(body.audit_event_id)).toMatchObject({
      decision: 'malformed',
      request: { client_ip: '203.0.113.9' },
    });
  });
});

describe('a Worker deployed with the wrangler dev issuer (KEYWAY_ISSUER=http://127.0.0.1:8787)', () => {
  const devEnv = { ...workerEnv, KEYWAY_ISSUER: 'http://127.0.0.1:8787' };
  /** The Worker's own fetch handler, as Cloudflare calls it for a request to that URL. */
  const serve = (request: Request) => worker.fetch(request as Parameters<typeof worker.fetch>[0], devEnv, createExecutionContext());

  it('refuses to serve at any other host: 503 with the reason, no token, no keys, and an error in its log', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const github = freshIssuer(inject('testIssuerBase'), 'w-loopback');
      const subject = await github.sign(ciClaims(github.url, devEnv.KEYWAY_ISSUER));
      const requests = [
        new Request('https://keyway.acme.workers.dev/token', {
          method: 'POST',
          body: exchangeForm(subject),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
        new Request('https://keyway.acme.dev/.well-known/jwks.json'),
        new Request('https://keyway.acme.dev/healthz'),
      ];
      for (const request of requests) {
        const response = await serve(request);
        expect(response.status).toBe(503);
        expect(response.headers.get('cache-control')).toBe('no-store');
        expect(response.headers.get('x-content-type-options')).toBe('nosniff');
        const body = (await response.json()) as Record<string, unknown>;
        expect(body['error']).toBe('temporarily_unavailable');
        expect(body['error_description']).toContain('KEYWAY_ISSUER is http://127.0.0.1:8787, a loopback URL for wrangler dev');
        expect(body).not.toHaveProperty('access_token');
        expect(body).not.toHaveProperty('keys');
      }
      expect(logged.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)).toContainEqual(
        expect.objectContaining({ level: 'error', message: 'broker refuses to serve', error: expect.stringContaining('served at keyway.acme.dev') }),
      );
    } finally {
      logged.mockRestore();
    }
  });

  it('is live but not ready, and its probes say nothing more', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const live = await serve(new Request('https://keyway.acme.dev/livez'));
      expect([live.status, await live.text()]).toEqual([200, 'ok']);
      const ready = await serve(new Request('https://keyway.acme.dev/readyz'));
      expect([ready.status, await ready.text(), ready.headers.get('cache-control')]).toEqual([503, 'not ready', 'no-store']);
    } finally {
      logged.mockRestore();
    }
  });

  it('still serves `npm run dev` (wrangler dev) on loopback', async () => {
    for (const origin of ['http://127.0.0.1:8787', 'http://localhost:8787']) {
      const response = await serve(new Request(`${origin}/healthz`));
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'ok' });
    }
  });
});

describe('the Worker broker when the audit log fails', () => {
  it('issues no token, answers 503, and recovers once storage is back with the chain whole', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'w-gh');
    const broker = await startWorkersHarness(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'w-oidc')));
    const exchange = async () =>
      broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await github.sign(ciClaims(github.url, broker.issuer))),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    const everyShard = (sql: string) =>
      Promise.all(sharedAuditShardObjects().map((shard) => runInDurableObject(shard, (_instance, storage) => void storage.storage.sql.exec(sql))));
    expect((await exchange()).status).toBe(200);

    await everyShard('ALTER TABLE audit_events RENAME TO audit_events_away');
    try {
      const refused = await exchange();
      expect(refused.status).toBe(503);
      const body = (await refused.json()) as Record<string, unknown>;
      expect(body['error']).toBe('temporarily_unavailable');
      expect(body).not.toHaveProperty('access_token');
    } finally {
      await everyShard('ALTER TABLE audit_events_away RENAME TO audit_events');
    }
    const after = await exchange();
    expect(after.status).toBe(200);

    // Every answered request has its record, and every chain runs unbroken through the outage.
    const answered = ((await after.json()) as { audit_event_id: string }).audit_event_id;
    expect(await new ShardedAuditLog(sharedAuditShards()).get(answered)).toMatchObject({ decision: 'granted' });
    await broker.auditUpkeep();
    const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;
    let checkpoints = 0;
    for (const audit of sharedAuditShards()) {
      const report = await verifyAuditLog({
        records: allRecords(audit, { order: 'asc', limit: 500 }),
        checkpoints: await audit.checkpoints(0, 500),
        keys: createLocalJWKSet(jwks),
      });
      expect(report).toMatchObject({ ok: true });
      checkpoints += report.checkpoints;
    }
    expect(checkpoints).toBeGreaterThan(0);
  });
});
