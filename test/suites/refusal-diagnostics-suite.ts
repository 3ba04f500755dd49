import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogFields, Logger } from '../../src/core/log.ts';
import { athOf, DpopKey } from '../support/dpop-key.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';

const BROKER_ISSUER = 'https://keyway.test';

/**
 * A deploy policy that lets a refused pipeline of its organisation learn claim names, a guardrail, and the auditors' policy;
 * and on an issuer of its own, branches allowed by a regex and refused by a deny policy's.
 */
function diagnosticPolicies(github: TestIssuer, branches: TestIssuer, broker: string): Record<string, string> {
  return {
    'branches.yaml': `
version: 1
issuer: { kind: github, url: "${branches.url}" }
match:
  repository_owner_id: "1200934"
  ref: { regex: "refs/heads/.+" }
grant:
  audience: https://deploy.acme.dev
`,
    'unsafe-branches.yaml': `
version: 1
effect: deny
issuer: { kind: github, url: "${branches.url}" }
match:
  ref: { regex: "refs/heads/.*/unsafe" }
`,
    'deploy.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
diagnostics: claim-names
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: refs/heads/main
  environment: production
grant:
  audience: https://deploy.acme.dev
`,
    'guard.yaml': `
version: 1
effect: deny
issuer: { kind: github, url: "${github.url}" }
match:
  event_name: [pull_request_target, workflow_run]
`,
    'auditors.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "555"
  environment: keyway-auditors
grant:
  audience: ${broker}
  scopes: [audit:read, policy:explain]
`,
  };
}

/** Refusals a pipeline can act on (`diagnostics: claim-names`) and their explanation for auditors. Runs on Node and inside workerd. */
export function refusalDiagnosticsSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`refusal diagnostics on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let branches: TestIssuer;
    let auditorToken: string;
    /** A token for the log alone (audit:read), without policy:explain. */
    let readerToken: string;
    /** The /audit page's sessions, signed in with each. */
    let auditorCookie: string;
    let readerCookie: string;
    const explained: LogFields[] = [];
    const log: Logger = { info: (message, fields = {}) => void (message === 'policy explained' && explained.push(fields)), warn() {}, error() {} };

    const exchange = async (overrides: Record<string, unknown>, extra: Record<string, string> = {}) =>
      postToken(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, overrides)), extra));
    const explanation = (id: unknown, token: string | null = auditorToken) =>
      broker.request(`/v1/audit/events/${String(id)}/explanation`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'diagnostics');
      branches = freshIssuer(issuerBase(), 'branches');
      broker = await start(diagnosticPolicies(github, branches, BROKER_ISSUER), { log });
      const auditor = async (scope: string) => {
        const granted = await exchange({ repository_id: '555', environment: 'keyway-auditors' }, { scope });
        expect(granted.status, JSON.stringify(granted.body)).toBe(200);
        return granted.body['access_token'] as string;
      };
      auditorToken = await auditor('audit:read policy:explain');
      readerToken = await auditor('audit:read');
      auditorCookie = await pageCookie(broker, auditorToken);
      readerCookie = await pageCookie(broker, readerToken);
    });
    afterAll(() => broker.close());

    it('names the claims that failed for the closest allow policy, never their values or patterns', async () => {
      const refused = await exchange({ ref: 'refs/heads/feature' });
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'no_policy_matched' });
      expect(refused.body['diagnostics']).toEqual({ failed_claims: ['ref'], denied_by: [] });
      expect(JSON.stringify(refused.body)).not.toMatch(/refs\/heads|feature|main|1200934|734201/);
    });

    it('names the deny guardrails that fired, by id', async () => {
      const refused = await exchange({ event_name: 'workflow_run', environment: 'staging' });
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'denied_by_policy' });
      expect(refused.body['diagnostics']).toEqual({ failed_claims: ['environment'], denied_by: ['guard'] });
    });

    it('tells a pipeline of another organisation nothing more than the reason', async () => {
      const refused = await exchange({ repository_owner_id: '666', repository_id: '1' });
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'no_policy_matched' });
      expect(Object.keys(refused.body).sort()).toEqual(['audit_event_id', 'error', 'error_description']);
    });

    it('explains the event to an auditor with the policy set that decided', async () => {
      const refused = await exchange({ ref: 'refs/heads/feature' });
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'no_policy_matched' });
      const event = await broker.auditEvent(refused.body['audit_event_id'] as string);
      expect(event?.policy?.set_version).toMatch(/^sha256:[0-9a-f]{64}$/);

      const response = await explanation(refused.body['audit_event_id']);
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const body = (await response.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        explained: 'audit_event',
        evaluated: true,
        audit_event: { id: refused.body['audit_event_id'], reason: 'no_policy_matched' },
        policy_set: { decided: event?.policy?.set_version, explained: event?.policy?.set_version, same: true },
        closest: { policy: 'deploy', failed_claims: ['ref'] },
        decision: { granted: false, reason: 'no_policy_matched' },
      });
      const deploy = (body['policies'] as { id: string; lines: { claim: string; held: boolean; actual?: unknown }[] }[]).find((p) => p.id === 'deploy');
      expect(deploy?.lines.filter((line) => !line.held)).toEqual([{ claim: 'ref', matcher: 'refs/heads/main', actual: 'refs/heads/feature', held: false }]);
    });

    it('says which claims the record kept cut, and does not present a replay over them as the decision', async () => {
      // The deny policy's regex read the whole branch (under 1,024 characters); the record keeps 256 of it, without /unsafe.
      const ref = `refs/heads/${'x'.repeat(300)}/unsafe`;
      const refused = await postToken(broker, exchangeForm(await branches.sign(ciClaims(branches.url, broker.issuer, { ref }))));
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'denied_by_policy' });
      const id = refused.body['audit_event_id'] as string;
      expect((await broker.auditEvent(id))?.claims?.['ref']).toMatch(/^refs\/heads\/x+…$/);

      const response = await explanation(id);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { note: string };
      expect(body).toMatchObject({ evaluated: true, policy_set: { same: true }, cut: { claims: ['ref'], request: [] }, decision: { granted: true } });
      expect(body.note).toMatch(
        /yet these policies grant it now, where they refused it then: the record keeps claim ref cut \(a text past 256 characters ends in …/,
      );
      expect(body.note).not.toMatch(/either it asked/);
      const page = await (await broker.request(`/audit/events/${id}`, { headers: { cookie: auditorCookie } })).text();
      expect(page).toMatch(/<p class="notice" data-field="policy set">[^<]*the record keeps claim ref cut/);
    });

    it("shows the explanation on the /audit page's event view", async () => {
      const refused = await exchange({ ref: 'refs/heads/feature' });
      const id = refused.body['audit_event_id'] as string;
      const page = await broker.request(`/audit/events/${id}`, { headers: { cookie: auditorCookie } });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('data-testid="event-explanation"');
      expect(html).toContain('explained by the policy set that decided');
      expect(html).toMatch(/<tr data-policy="deploy" data-claim="ref" data-held="false">/);
      expect(html).toMatch(/data-field="closest">deploy \(failed: ref\)</);
    });

    it("withholds the event view's explanation from a token without policy:explain", async () => {
      const id = (await exchange({ ref: 'refs/heads/feature' })).body['audit_event_id'] as string;
      const page = await broker.request(`/audit/events/${id}`, { headers: { cookie: readerCookie } });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain(id);
      expect(html).toContain('data-testid="explanation-withheld"');
      expect(html).not.toContain('data-testid="event-explanation"');
      // No policy's lines (their patterns beside the recorded values) are on the page.
      expect(html).not.toMatch(/data-policy=|data-held=|closest/);
      expect(explained.filter((fields) => fields['audit_event_id'] === id)).toEqual([]);
    });

    it('logs the operator of every explanation, from the API and from the event view', async () => {
      const id = (await exchange({ ref: 'refs/heads/feature' })).body['audit_event_id'] as string;
      expect((await explanation(id)).status).toBe(200);
      expect((await broker.request(`/audit/events/${id}`, { headers: { cookie: auditorCookie } })).status).toBe(200);
      const { sub, client_id: clientId, jti } = decodeJwt(auditorToken);
      const operator = { operator: sub, client_id: clientId, token_jti: jti, audit_event_id: id };
      expect(explained.filter((fields) => fields['audit_event_id'] === id)).toEqual([operator, operator]);
    });

    it('explains to a DPoP-bound auditor token with one proof, claimed once: no second check refuses it as replayed', async () => {
      const id = (await exchange({ ref: 'refs/heads/feature' })).body['audit_event_id'] as string;
      const key = await DpopKey.generate();
      const granted = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, { repository_id: '555', environment: 'keyway-auditors' })), {
          scope: 'audit:read policy:explain',
        }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`) },
      });
      const bound = ((await granted.json()) as Record<string, unknown>)['access_token'] as string;
      expect(decodeJwt(bound)['cnf']).toEqual({ jkt: key.jkt });
      const path = `/v1/audit/events/${id}/explanation`;
      const proof = await key.proof('GET', `${broker.issuer}${path}`, { ath: await athOf(bound) });
      const withProof = () => broker.request(path, { headers: { authorization: `DPoP ${bound}`, dpop: proof } });
      const explainedNow = await withProof();
      expect(explainedNow.status, await explainedNow.clone().text()).toBe(200);
      expect(await explainedNow.json()).toMatchObject({ explained: 'audit_event', audit_event: { id } });
      // The proof is good once, as at every operator route.
      const replayed = await withProof();
      expect(replayed.status).toBe(401);
      expect(await replayed.json()).toMatchObject({ error: 'invalid_dpop_proof' });
    });

    it('answers the explanation only to a token with audit:read and policy:explain, and 404 for an unknown event', async () => {
      const id = (await exchange({ ref: 'refs/heads/feature' })).body['audit_event_id'];
      expect((await explanation(id, null)).status).toBe(401);
      // Reading the log is not enough: the explanation shows every policy's patterns, as POST /v1/policy/explain does.
      const forbidden = await explanation(id, readerToken);
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="audit:read policy:explain"');
      const body = (await forbidden.json()) as Record<string, unknown>;
      expect(body['error']).toBe('insufficient_scope');
      expect(JSON.stringify(body)).not.toMatch(/refs\/heads\/main|1200934|deploy/);
      // The pipeline's CI token is not a keyway token for this broker.
      expect((await explanation(id, await github.sign(ciClaims(github.url, broker.issuer)))).status).toBe(401);
      expect((await explanation('01JBZ7N3D8K1C2F4G6H8J0K2M4')).status).toBe(404);
    });
  });
}
