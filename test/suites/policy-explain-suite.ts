import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger, LogFields } from '../../src/core/log.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/** Both harnesses run the broker as this issuer; the operator policy grants it as audience. */
const BROKER_ISSUER = 'https://keyway.test';

/** A deploy policy, a guardrail, and the policy that lets operators (one repository's protected environment) ask for explanations. */
function explainPolicies(github: TestIssuer, broker: string): Record<string, string> {
  return {
    'deploy.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: refs/heads/main
  environment: production
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write]
`,
    'guard.yaml': `
version: 1
effect: deny
issuer: { kind: github, url: "${github.url}" }
match:
  event_name: [pull_request_target, workflow_run]
`,
    'operators.yaml': `
version: 1
description: the platform team's keyway-ops repository may explain decisions
issuer: { kind: github, url: "${github.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "555"
  environment: keyway-operators
grant:
  audience: ${broker}
  scopes: [policy:explain, ops:read]
`,
  };
}

/** Another GitHub deployment's jobs of its acme (whose number may be acme's on the App's GitHub), granted acme's repositories unpinned, and pinned. */
function serverPolicies(server: TestIssuer): Record<string, string> {
  const grant = (pin: string) => `grant:\n  github: { owner: acme,${pin} repositories: [api], permissions: { contents: read } }\n`;
  const policy = (pin: string) => `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_owner_id: "1200934" }\n${grant(pin)}`;
  return { 'server/unpinned.yaml': policy(''), 'server/pinned.yaml': policy(' owner_id: "1200934",') };
}

/** `POST /v1/policy/explain` end to end. Runs on Node and inside workerd. */
export function policyExplainSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`POST /v1/policy/explain on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let operatorToken: string;
    /** A GitHub Actions issuer of another GitHub deployment than the App's (github.com here, the broker having no App of its own). */
    let server: TestIssuer;
    const whoCanAsked: LogFields[] = [];
    const log: Logger = { info: (message, fields = {}) => void (message === 'policy who-can asked' && whoCanAsked.push(fields)), warn() {}, error() {} };

    const exchange = async (overrides: Record<string, unknown>, extra: Record<string, string> = {}) =>
      postToken(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, overrides)), extra));
    /**
     * A granted exchange's access token, verified with the broker's JWKS: a refused exchange or a broken token fails here,
     * so a later 401 is about the token's audience or scope, never about it missing.
     */
    const accessToken = async (overrides: Record<string, unknown>, extra: Record<string, string> = {}): Promise<string> => {
      const granted = await exchange(overrides, extra);
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      const token = granted.body['access_token'];
      expect(token).toBeTypeOf('string');
      const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;
      await jwtVerify(token as string, createLocalJWKSet(jwks), { issuer: broker.issuer, typ: 'at+jwt' });
      return token as string;
    };
    const denied = async (overrides: Record<string, unknown>, reason: 'no_policy_matched' | 'denied_by_policy', extra: Record<string, string> = {}) => {
      const refused = await exchange(overrides, extra);
      await expectRefusal(broker, refused, { error: 'invalid_request', reason });
      return refused;
    };
    /** `token: null` sends no Authorization header at all. */
    const explain = (body: unknown, token: string | null = operatorToken) =>
      broker.request('/v1/policy/explain', {
        method: 'POST',
        body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
      });

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'explain');
      server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'explain-server');
      broker = await start({ ...explainPolicies(github, BROKER_ISSUER), ...serverPolicies(server) }, { log });
      expect(broker.issuer).toBe(BROKER_ISSUER);
      operatorToken = await accessToken({ repository_id: '555', environment: 'keyway-operators' }, { scope: 'policy:explain' });
    });
    afterAll(() => broker.close());

    it('explains a denied exchange by its audit event id, line by line, to an operator', async () => {
      const refused = await denied({ ref: 'refs/heads/feature' }, 'no_policy_matched');
      // The pipeline learns the audit event id and a coarse reason, never which line failed.
      expect(Object.keys(refused.body).sort()).toEqual(['audit_event_id', 'error', 'error_description']);
      expect(JSON.stringify(refused.body)).not.toMatch(/deploy|ref|feature/);

      const response = await explain({ audit_event_id: refused.body['audit_event_id'] });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const body = (await response.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        explained: 'audit_event',
        evaluated: true,
        audit_event: { id: refused.body['audit_event_id'], decision: 'denied', reason: 'no_policy_matched' },
        issuer: github.url,
        decision: { granted: false, reason: 'no_policy_matched' },
        denied_by: [],
      });
      const deploy = (body['policies'] as { id: string; lines: { claim: string; held: boolean; actual?: unknown }[] }[]).find(
        (policy) => policy.id === 'deploy',
      );
      expect(deploy?.lines.filter((line) => !line.held)).toEqual([{ claim: 'ref', matcher: 'refs/heads/main', actual: 'refs/heads/feature', held: false }]);
    });

    it('explains a guardrail denial, and the request as it was made', async () => {
      const refused = await denied({ event_name: 'workflow_run' }, 'denied_by_policy', { scope: 'deploy:write' });
      const body = (await (await explain({ audit_event_id: refused.body['audit_event_id'] })).json()) as Record<string, unknown>;
      expect(body).toMatchObject({ request: { audience: [], scope: ['deploy:write'] }, denied_by: ['guard'], decision: { reason: 'denied_by_policy' } });
    });

    it('explains claims given outright, and another request', async () => {
      const claims = ciClaims(github.url, broker.issuer);
      const body = (await (await explain({ claims, scope: 'admin' })).json()) as Record<string, unknown>;
      expect(body).toMatchObject({ explained: 'claims', decision: { granted: false, reason: 'scope_not_granted' } });
      const granted = (await (await explain({ claims })).json()) as Record<string, unknown>;
      expect(granted['decision']).toMatchObject({ granted: true, policy: 'deploy', audience: ['https://deploy.acme.dev'], scope: ['deploy:write'] });
    });

    it('says so when the token never verified, so no policy was evaluated', async () => {
      const forged = await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' });
      const refused = await postToken(broker, exchangeForm(forged));
      await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'signature_invalid' });
      const body = (await (await explain({ audit_event_id: refused.body['audit_event_id'] })).json()) as Record<string, unknown>;
      expect(body).toMatchObject({ evaluated: false, audit_event: { reason: 'signature_invalid' } });
      expect(body).not.toHaveProperty('policies');
    });

    it('answers nothing without an operator token: 401 before any lookup, 403 without the scope', async () => {
      const id = (await denied({ ref: 'refs/heads/feature' }, 'no_policy_matched')).body['audit_event_id'];
      const anonymous = await explain({ audit_event_id: id }, null);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toEqual({
        error: 'invalid_token',
        error_description: 'a Bearer access token is required',
        audit_event_id: expect.any(String),
      });

      // A pipeline's own keyway token is for another audience.
      const pipeline = await accessToken({});
      expect((await explain({ audit_event_id: id }, pipeline)).status).toBe(401);
      // The same CI token as the pipeline's is no better than garbage here.
      expect((await explain({ audit_event_id: id }, await github.sign(ciClaims(github.url, broker.issuer)))).status).toBe(401);

      const opsRead = await accessToken({ repository_id: '555', environment: 'keyway-operators' }, { scope: 'ops:read' });
      const forbidden = await explain({ audit_event_id: id }, opsRead);
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="policy:explain"');
      expect(JSON.stringify(await forbidden.json())).not.toContain('deploy');
    });

    it('refuses bad requests with 400 and unknown events with 404, never a 500', async () => {
      for (const body of [
        'not json',
        { audit_event_id: 'x' },
        {},
        { claims: {}, audit_event_id: '01JBZ7N3D8K1C2F4G6H8J0K2M4' },
        { claims: [] },
        { claims: {}, extra: 1 },
        // Claims nested far deeper than any CI system's (an iss so deep was a 500: JSON.stringify ran out of stack), top-level or not.
        `{"claims":{"iss":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`,
        `{"claims":{"environment":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`,
      ]) {
        const response = await explain(body);
        expect(response.status, JSON.stringify(body)).toBe(400);
        expect(await response.json()).toMatchObject({ error: 'invalid_request' });
      }
      expect((await explain({ audit_event_id: '01JBZ7N3D8K1C2F4G6H8J0K2M4' })).status).toBe(404);
      expect((await explain(JSON.stringify({ claims: { x: 'a'.repeat(70_000) } }))).status).toBe(400);
    });

    it('refuses claims given outright past what a subject token carries, or a value past what a record keeps: 400, before any policy quotes them', async () => {
      // Each policy line reads and quotes the claim it names: a claim of 60 KB came back once per policy of the issuer.
      const base = ciClaims(github.url, broker.issuer, { repository: '' });
      const padded = (chars: number) => ({ ...base, repository: 'x'.repeat(chars - 2) });
      expect((await explain({ claims: padded(2_048) })).status).toBe(200);
      // Values of 2,048 characters each, up to 16,384 in all.
      const spread = (chars: number) => {
        const values = Object.fromEntries(Array.from({ length: 7 }, (_, n) => [`extra_${n}`, 'x'.repeat(2_046)]));
        const claims = { ...base, ...values, last: '' };
        return { ...claims, last: 'x'.repeat(chars - JSON.stringify(claims).length) };
      };
      expect(JSON.stringify(spread(16_384)).length).toBe(16_384);
      expect((await explain({ claims: spread(16_384) })).status).toBe(200);
      for (const [claims, description] of [
        [padded(2_049), "a claim's value is at most 2048 characters as JSON, as an audit record keeps it"],
        [
          { ...base, aud: Array.from({ length: 400 }, (_, n) => `https://a${n}.example`) },
          "a claim's value is at most 2048 characters as JSON, as an audit record keeps it",
        ],
        [spread(16_385), 'claims are at most 16384 characters as JSON, as many as a subject token carries'],
      ] as const) {
        const refused = await explain({ claims });
        expect(refused.status).toBe(400);
        expect(await refused.json()).toEqual({ error: 'invalid_request', error_description: description });
      }
    });

    it('answers POST /v1/policy/who-can from the loaded policies, to operators only', async () => {
      const whoCan = (body: unknown, token: string | null = operatorToken) =>
        broker.request('/v1/policy/who-can', {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
        });
      const response = await whoCan({ scope: 'deploy:write' });
      expect(response.status).toBe(200);
      // The answer shows policy conditions: the operator who asked is in the log, as for explanations.
      const operator = decodeJwt(operatorToken);
      expect(whoCanAsked).toEqual([{ operator: operator.sub, client_id: operator['client_id'], token_jti: operator.jti, question: { scope: 'deploy:write' } }]);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const answer = (await response.json()) as { allow: { id: string; conditions: unknown[]; guardrails: unknown[] }[]; audit_only: string[] };
      expect(answer.allow.map((policy) => policy.id)).toEqual(['deploy']);
      expect(answer.allow[0]?.conditions).toContainEqual({ claim: 'environment', matcher: 'production' });
      // The guardrail's events are neither push nor pinned out by deploy's lines: it may cut in. It names no
      // subject_audience, so it has no audience line: it holds whatever audience a token was minted for.
      expect(answer.allow[0]?.guardrails).toEqual([{ id: 'guard', conditions: [{ claim: 'event_name', matcher: ['pull_request_target', 'workflow_run'] }] }]);

      for (const [body, message] of [
        [{ scope: 'nobody:grants' }, /no policy grants scope 'nobody:grants'/],
        [{ github_permission: 'contents:admin' }, /not a GitHub repository permission/],
        // Names every object has by its prototype, not permissions of the table: a 400 like any unknown name, not a 500.
        [{ github_permission: 'constructor:read' }, /not a GitHub repository permission/],
        [{ github_permission: 'toString:write' }, /not a GitHub repository permission/],
        [{ github_permission: '__proto__:read' }, /not a GitHub repository permission/],
        [{}, /ask about a scope/],
        [{ scope: 'x', extra: 1 }, /./],
      ] as const) {
        const refused = await whoCan(body);
        expect(refused.status, JSON.stringify(body)).toBe(400);
        const error = (await refused.json()) as Record<string, string>;
        expect(error['error']).toBe('invalid_request');
        expect(error['error_description']).toMatch(message);
      }
      // As the exchange grants it: a grant that pins no owner_id goes to a job of the App's deployment only.
      const permission = await whoCan({ github_permission: 'contents:read' });
      expect(permission.status).toBe(200);
      expect(((await permission.json()) as { allow: { id: string }[] }).allow.map((policy) => policy.id)).toEqual(['server/pinned']);
      expect((await whoCan({ scope: 'deploy:write' }, null)).status).toBe(401);
      const opsRead = await accessToken({ repository_id: '555', environment: 'keyway-operators' }, { scope: 'ops:read' });
      const forbidden = await whoCan({ scope: 'deploy:write' }, opsRead);
      expect(forbidden.status).toBe(403);
      expect(JSON.stringify(await forbidden.json())).not.toContain('deploy');
    });
  });
}
