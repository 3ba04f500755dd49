import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Inventory, InventoryIdentity } from '../../src/core/audit/inventory.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { auditorPolicies, auditorToken } from './audit-api-suite.ts';
import { exchangeForm, freshIssuer, postToken, suitePolicies, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/** `GET /v1/inventory` on a log of known usage, on whichever runtime. */
export function inventorySuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`GET /v1/inventory on ${runtime}`, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let people: TestIssuer;
    let token: string;
    const get = async (query = '', bearer = token) => broker.request(`/v1/inventory${query}`, { headers: { authorization: `Bearer ${bearer}` } });
    const identity = (inventory: Inventory, name: string): InventoryIdentity | undefined =>
      inventory.identities.find((entry) => (entry.repository ?? entry.subject) === name);

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'inventory-gh');
      people = freshIssuer(issuerBase(), 'inventory-people');
      broker = await start({ ...suitePolicies(github, freshIssuer(issuerBase(), 'inventory-oidc')), ...auditorPolicies(people, 'https://keyway.test') });
      const exchange = async (overrides: Record<string, unknown>, extra: Record<string, string> = {}) =>
        postToken(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, overrides)), extra));
      // Known usage: acme/api granted three times (one of them artifacts:read only) and refused twice.
      expect((await exchange({})).status).toBe(200);
      expect((await exchange({})).status).toBe(200);
      expect((await exchange({}, { scope: 'artifacts:read', audience: 'https://artifacts.acme.dev' })).status).toBe(200);
      expect((await exchange({ ref: 'refs/heads/nope' })).status).toBe(400);
      expect((await exchange({ event_name: 'pull_request_target' })).status).toBe(400);
      token = await auditorToken(broker, people);
    });
    afterAll(() => broker.close());

    it('counts every identity of the window: policies, scopes, audiences, first and last seen, refusals', async () => {
      const response = await get();
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const inventory = (await response.json()) as Inventory;
      expect(Date.parse(inventory.until) - Date.parse(inventory.since)).toBe(30 * 86_400_000);
      const api = identity(inventory, 'acme/api');
      expect(api).toMatchObject({
        issuer: github.url,
        tenant: '1200934',
        repository: 'acme/api',
        subject: null,
        grants: 3,
        denials: 2,
        policies: [{ value: 'deploy/production', count: 3 }],
        scopes: [
          { value: 'artifacts:read', count: 3 },
          { value: 'deploy:write', count: 2 },
        ],
        audiences: [
          { value: 'https://deploy.acme.dev', count: 2 },
          { value: 'https://artifacts.acme.dev', count: 1 },
        ],
        github_permissions: [],
        denial_reasons: [
          { value: 'denied_by_policy', count: 1 },
          { value: 'no_policy_matched', count: 1 },
        ],
      });
      expect(Date.parse(api?.first_seen ?? '')).toBeLessThanOrEqual(Date.parse(api?.last_seen ?? ''));
      // The auditor is an identity too, known by its subject (no repository).
      expect(identity(inventory, 'alice@acme.dev')).toMatchObject({
        issuer: people.url,
        repository: null,
        grants: 1,
        scopes: [{ value: 'audit:read', count: 1 }],
      });
      // Nothing in it is a token, a token hash or a jti.
      expect(JSON.stringify(inventory)).not.toMatch(/eyJ|sha256|jti/);
    });

    it('filters, sorts and exports CSV and NDJSON', async () => {
      const only = (await (await get(`?issuer=${encodeURIComponent(github.url)}&decision=denied`)).json()) as Inventory;
      expect(only.identities.map((entry) => [entry.repository, entry.grants, entry.denials])).toEqual([['acme/api', 0, 2]]);
      const sorted = (await (await get('?sort=grants&order=desc')).json()) as Inventory;
      expect(sorted.identities[0]?.repository).toBe('acme/api');
      const csv = await get('?format=csv');
      expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
      const rows = (await csv.text()).trim().split('\r\n');
      expect(rows[0]).toBe(
        'issuer,tenant,repository,subject,first_seen,last_seen,grants,denials,policies,scopes,audiences,github_permissions,github_repositories,denial_reasons',
      );
      expect(rows.find((row) => row.includes('acme/api'))).toContain(',3,2,deploy/production=3,artifacts:read=3 deploy:write=2,');
      const ndjson = (await (await get('?format=ndjson')).text()).trim().split('\n');
      expect(ndjson.map((line) => (JSON.parse(line) as InventoryIdentity).repository ?? (JSON.parse(line) as InventoryIdentity).subject).sort()).toEqual([
        'acme/api',
        'alice@acme.dev',
      ]);
      // A window that ends before any of it: nobody.
      expect(((await (await get('?until=2020-01-01')).json()) as Inventory).identities).toEqual([]);
    });

    it("answers what policy suggest --url reads: usage groups and the claims of each policy's grants", async () => {
      const response = await get('/usage?since=1d');
      expect(response.status).toBe(200);
      const usage = (await response.json()) as { rows: { policy_id: string; decision: string; count: number }[]; claims: Record<string, unknown>[] };
      const granted = usage.rows.filter((row) => row.policy_id === 'deploy/production' && row.decision === 'granted');
      expect(granted.reduce((total, row) => total + row.count, 0)).toBe(3);
      expect(usage.claims).toContainEqual({ policy_id: 'deploy/production', claim: 'environment', least: 'production', greatest: 'production', count: 3 });
      expect((await get('/usage?since=soon')).status).toBe(400);
    });

    it('never names an identity after a token that did not verify: its claimed iss and sub are not evidence', async () => {
      const now = Math.floor(Date.now() / 1000);
      const forged = async (sub: string) => {
        const claims = { iss: people.url, aud: broker.issuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID() };
        const refused = await postToken(broker, exchangeForm(await people.sign(claims, { key: 'foreign' }), { audience: broker.issuer }));
        expect(refused.status).toBe(400);
        expect(refused.body['access_token']).toBeUndefined();
        expect((await broker.auditEvent(refused.body['audit_event_id'] as string))?.subject_token?.claimed_sub).toBe(sub);
      };
      await forged('alice@acme.dev');
      await forged('mallory-invented-identity');
      // Today is read raw by default, and from the roll-up when the window ends after it.
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      for (const query of ['', `?since=2d&until=${tomorrow}`]) {
        const inventory = (await (await get(query)).json()) as Inventory;
        expect(identity(inventory, 'alice@acme.dev'), query).toMatchObject({ issuer: people.url, grants: 1, denials: 0 });
        expect(JSON.stringify(inventory), query).not.toContain('mallory-invented-identity');
        const unverified = inventory.identities.find((entry) => entry.issuer === null && entry.subject === null && entry.repository === null);
        expect(unverified?.denials, query).toBeGreaterThanOrEqual(2);
      }
    });

    it("counts no operator's housekeeping as a grant: an /audit sign-in and its sign-out name the operator, but grant no access", async () => {
      const cookie = await pageCookie(broker, token);
      const signedOut = await broker.request('/audit/sign-out', { method: 'POST', redirect: 'manual', headers: { cookie, 'sec-fetch-site': 'same-origin' } });
      expect(signedOut.status).toBe(303);
      const inventory = (await (await get()).json()) as Inventory;
      expect(inventory.identities.filter((entry) => entry.issuer === broker.issuer)).toEqual([]);
      expect(identity(inventory, 'alice@acme.dev')).toMatchObject({ issuer: people.url, grants: 1 });
    });

    it('refuses a malformed window, sort or filter with 400, never a 500', async () => {
      for (const query of [
        '?since=yesterday',
        '?since=1d&until=2d',
        '?sort=size',
        '?order=up',
        '?format=xml',
        '?jti=x',
        '?upstream=github',
        '?decision=maybe',
      ]) {
        const response = await get(query);
        expect(response.status, query).toBe(400);
        expect(await response.json()).toMatchObject({ error: 'invalid_request' });
      }
    });
  });
}
