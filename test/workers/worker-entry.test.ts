import { runInDurableObject } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { describe, expect, inject, it } from 'vitest';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { allRecords } from '../../src/audit/all-records.ts';
import { verifyAuditLog } from '../../src/audit/verify-chain.ts';
import { keywayState, stateStores } from '../../src/workers/keyway-state.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

const entry = (exports as unknown as { default: Fetcher }).default;

describe('the deployed Worker entry', () => {
  it('serves the bundled policies: the dev quickstart and auditor are inactive at the edge', async () => {
    const response = await entry.fetch('https://keyway.test/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', policies: 7, inactive_policies: 2 });
  });

  it('audits a malformed request in the Durable Object before answering', async () => {
    const response = await entry.fetch('https://keyway.test/token', { method: 'POST', body: 'grant_type=nope', headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '203.0.113.9' } });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; audit_event_id: string };
    expect(body.error).toBe('unsupported_grant_type');
    expect(await keywayState(workerEnv.STATE).get(body.audit_event_id)).toMatchObject({ decision: 'malformed', request: { client_ip: '203.0.113.9' } });
  });
});

describe('the Worker broker when the audit log fails', () => {
  it('issues no token, answers 503, and recovers once storage is back with the chain whole', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'w-gh');
    const broker = await startWorkersHarness(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'w-oidc')));
    const exchange = async () =>
      broker.request('/token', { method: 'POST', body: exchangeForm(await github.sign(ciClaims(github.url, broker.issuer))), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const state = keywayState(workerEnv.STATE);
    expect((await exchange()).status).toBe(200);

    await runInDurableObject(state, (_instance, storage) => void storage.storage.sql.exec('ALTER TABLE audit_events RENAME TO audit_events_away'));
    try {
      const refused = await exchange();
      expect(refused.status).toBe(503);
      const body = (await refused.json()) as Record<string, unknown>;
      expect(body['error']).toBe('temporarily_unavailable');
      expect(body).not.toHaveProperty('access_token');
    } finally {
      await runInDurableObject(state, (_instance, storage) => void storage.storage.sql.exec('ALTER TABLE audit_events_away RENAME TO audit_events'));
    }
    const after = await exchange();
    expect(after.status).toBe(200);

    // Every answered request has its record, and the chain runs unbroken through the outage.
    const { audit } = stateStores(() => keywayState(workerEnv.STATE));
    const answered = ((await after.json()) as { audit_event_id: string }).audit_event_id;
    expect(await audit.get(answered)).toMatchObject({ decision: 'granted' });
    await broker.auditUpkeep();
    const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;
    const report = await verifyAuditLog({ records: allRecords(audit, { order: 'asc', limit: 500 }), checkpoints: await audit.checkpoints(0, 500), keys: createLocalJWKSet(jwks), issuer: broker.issuer });
    expect(report).toMatchObject({ ok: true });
    expect(report.checkpoints).toBeGreaterThan(0);
  });
});
