import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, base64url, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import type { Reason } from '../../src/core/errors/reasons.ts';
import type { OAuthErrorCode } from '../../src/http/oauth-errors.ts';
import type { JwksCachePolicy } from '../../src/core/verify/jwks-cache.ts';
import type { Logger } from '../../src/core/log.ts';
import type { SqlValue } from '../../src/storage/sql-database.ts';
import untrustedTriggers from '../../examples/policies/guardrails/untrusted-triggers.yaml?raw';
import { atIssuer } from '../support/readme-policies.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';

/** A running broker, whichever runtime it runs on. */
export interface BrokerHarness {
  /** The broker's issuer URL: default audience of subject tokens, `iss` of issued tokens. */
  readonly issuer: string;
  /** Where a broker that listens on a socket (Node) listens; undefined in workerd. */
  readonly url?: string;
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Reads the audit record from the runtime's own durable store. */
  auditEvent(id: string): Promise<AuditEvent | undefined>;
  /** The newest audit records (up to 50), newest first. */
  recentAuditEvents(): Promise<readonly AuditEvent[]>;
  /** Runs a round of audit log upkeep now: signs a checkpoint of the head. */
  auditUpkeep(): Promise<void>;
  /** Takes the single-use store away (its table renamed, in every shard) or brings it back. */
  setReplayGuardDown(down: boolean): Promise<void>;
  /** Takes the revocation list away (its table renamed, in every shard) or brings it back: on Node, with the single-use store it shares. */
  setRevocationListDown(down: boolean): Promise<void>;
  /** Runs a round of GitHub token revocation now, as the runtime's timer (Node) or alarm (Workers) does. */
  revokeDueGitHubTokens(): Promise<void>;
  /** Runs one statement on the broker's own database behind its back, as whoever holds the file (Node) or the storage (Workers) could. */
  tamper(sql: string, params: readonly SqlValue[]): Promise<void>;
  close(): Promise<void>;
}

/** What talking to a broker over HTTP needs, for helpers that only exchange tokens. */
export type BrokerClient = Pick<BrokerHarness, 'issuer' | 'request'>;

export interface HarnessOptions {
  readonly jwksCachePolicy?: JwksCachePolicy;
  /** More settings, as environment variables / Worker vars (`KEYWAY_RATE_LIMIT_*`, `KEYWAY_GITHUB_*`), over the defaults. */
  readonly settings?: Readonly<Record<string, string>>;
  /** The broker's clock. */
  readonly now?: () => number;
  readonly log?: Logger;
  /**
   * Durable state no other broker shares (audit log, keys, live policy set, deliveries). A Node
   * broker always has it (a fresh data directory); a Worker broker otherwise shares its test file's.
   */
  readonly ownState?: boolean;
}

export type StartBroker = (policies: Readonly<Record<string, string>>, options?: HarnessOptions) => Promise<BrokerHarness>;

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

export function exchangeForm(token: string, extra: Record<string, string | string[]> = {}): URLSearchParams {
  const form = new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: token, subject_token_type: ID_TOKEN });
  for (const [name, value] of Object.entries(extra)) {
    for (const item of Array.isArray(value) ? value : [value]) form.append(name, item);
  }
  return form;
}

/** The broker's answer to `POST /token`. */
export interface TokenResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

export async function postToken(broker: BrokerClient, body: BodyInit, contentType = 'application/x-www-form-urlencoded'): Promise<TokenResponse> {
  const response = await broker.request('/token', { method: 'POST', body, headers: { 'content-type': contentType } });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

type AuditReader = Pick<BrokerHarness, 'auditEvent'>;

export interface ExpectedRefusal {
  /** 400 unless given. */
  readonly status?: number;
  readonly error: OAuthErrorCode;
  /** The audit record's reason; `null` for a refusal that has no record of its own (the rest of a rate-limited run). */
  readonly reason: Reason | null;
}

/** RFC 6749 §5.2: `error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )`. */
export const RFC_6749_ERROR_DESCRIPTION = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * How every refusal of `POST /token` is checked: the error_description RFC 6749 allows, the status, the RFC 6749 error, no token in the
 * answer, `Cache-Control: no-store`, and the audit record with the expected reason and nothing issued.
 */
export async function expectRefusal(broker: AuditReader, result: TokenResponse, expected: ExpectedRefusal & { readonly reason: Reason }): Promise<AuditEvent>;
export async function expectRefusal(broker: AuditReader, result: TokenResponse, expected: ExpectedRefusal & { readonly reason: null }): Promise<undefined>;
export async function expectRefusal(broker: AuditReader, result: TokenResponse, expected: ExpectedRefusal): Promise<AuditEvent | undefined> {
  expect(result.status, JSON.stringify(result.body)).toBe(expected.status ?? 400);
  expect(result.body['error']).toBe(expected.error);
  expect(result.body).not.toHaveProperty('access_token');
  expect(result.headers.get('cache-control')).toBe('no-store');
  expect(result.body['error_description']).toMatch(RFC_6749_ERROR_DESCRIPTION);
  if (expected.reason === null) {
    expect(result.body).not.toHaveProperty('audit_event_id');
    return undefined;
  }
  const id = result.body['audit_event_id'];
  expect(id).toBeTypeOf('string');
  const event = await broker.auditEvent(id as string);
  expect(event?.reason).toBe(expected.reason);
  expect(event).not.toHaveProperty('issued');
  return event;
}

let issuerCounter = 0;
/** A fresh issuer on the test issuer server, so key rotation and outages in one test touch no other. */
export function freshIssuer(base: string, label: string): TestIssuer {
  issuerCounter += 1;
  return new TestIssuer(base, `${label}-${issuerCounter}-${crypto.randomUUID().slice(0, 8)}`);
}

/** Policies used throughout: a GitHub-kind issuer at the test issuer's URL, the shipped guardrail, and a plain OIDC issuer. */
export function suitePolicies(github: TestIssuer, generic: TestIssuer): Record<string, string> {
  return {
    'deploy/production.yaml': `
version: 1
description: acme/api deploys to production from main through the protected environment
issuer: { kind: github, url: "${github.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  repository: acme/api
  ref: refs/heads/main
  environment: production
  event_name: [push, workflow_dispatch]
  job_workflow_ref: { glob: "acme/workflows/.github/workflows/deploy.yml@refs/tags/v*" }
grant:
  audience: [https://deploy.acme.dev, https://artifacts.acme.dev]
  scopes: [deploy:write, artifacts:read]
  ttl: 10m
  subject: "github:{repository}:{environment}"
  claims:
    repository: "{repository}"
`,
    'guardrails/untrusted-triggers.yaml': atIssuer(untrustedTriggers, `{ kind: github, url: "${github.url}" }`),
    'generic/service.yaml': `
version: 1
issuer: "${generic.url}"
match:
  sub: svc-b
grant:
  audience: https://b.example
  scopes: [b:read]
`,
  };
}

/** The exchange end to end, with the attacks a reviewer tries first. Runs on Node and inside workerd. */
export function exchangeSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`token exchange on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let generic: TestIssuer;
    const good = (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.issuer, overrides));

    const refused = async (body: BodyInit, expected: ExpectedRefusal & { readonly reason: Reason }, contentType?: string) => {
      const result = await postToken(broker, body, contentType);
      return { ...result, event: await expectRefusal(broker, result, expected) };
    };

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'gh');
      generic = freshIssuer(issuerBase(), 'oidc');
      // A plain OIDC service whose subject template places free-text claims.
      const templated = `version: 1\nissuer: "${generic.url}"\nmatch: { sub: svc-templated }\ngrant:\n  audience: https://templated.example\n  subject: "team:{team}:env:{env}"\n`;
      // Workflow refs pinned to main by a pattern whose wildcards come before the @.
      const mainOnly = (repositoryId: string, line: string) =>
        `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "${repositoryId}"\n` +
        `  ${line}\ngrant:\n  audience: https://main-only.example\n`;
      broker = await start({
        ...suitePolicies(github, generic),
        'generic/templated.yaml': templated,
        'main-only/glob.yaml': mainOnly('734301', 'workflow_ref: { glob: "acme/api/**@refs/heads/main" }'),
        'main-only/regex.yaml': mainOnly('734302', 'workflow_ref: { regex: "acme/api/.*@refs/heads/main" }'),
        // A customised sub (include_claim_keys: repo, job_workflow_ref) pinned to the reusable workflow on main.
        'main-only/sub-glob.yaml': mainOnly('734305', 'sub: { glob: "repo:acme/api:job_workflow_ref:acme/workflows/**@refs/heads/main" }'),
        'main-only/sub-regex.yaml': mainOnly('734306', 'sub: { regex: "repo:acme/api:job_workflow_ref:acme/workflows/.*@refs/heads/main" }'),
        // An allow policy whose tokens are minted for an audience of its own, not the broker's.
        'own-audience/deploy.yaml':
          `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsubject_audience: https://own-audience.example\n` +
          `match:\n  repository_owner_id: "1200934"\n  repository_id: "734303"\ngrant:\n  audience: https://own-audience-api.example\n`,
        // A repository whose jobs may have tokens in any environment, but a bot's never in production.
        'bots/any-environment.yaml':
          `version: 1\nissuer: { kind: github, url: "${github.url}" }\n` +
          `match:\n  repository_owner_id: "1200934"\n  repository_id: "734304"\ngrant:\n  audience: https://bots.example\n`,
        'guardrails/no-bot-in-production.yaml': `version: 1\neffect: deny\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  environment: production\n  actor: "dependabot[bot]"\n`,
      });
    });
    afterAll(() => broker.close());

    describe('the good path', () => {
      it('grants a matching token and the issued token verifies with the published JWKS', async () => {
        const subjectToken = await good();
        const result = await postToken(broker, exchangeForm(subjectToken, { audience: 'https://deploy.acme.dev', scope: 'deploy:write' }));
        expect(result.status).toBe(200);
        expect(result.headers.get('cache-control')).toBe('no-store');
        expect(result.headers.get('pragma')).toBe('no-cache');
        expect(result.body).toMatchObject({
          issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          token_type: 'Bearer',
          expires_in: 600,
          scope: 'deploy:write',
        });

        const accessToken = result.body['access_token'] as string;
        const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as { keys: JWK[] };
        const { payload, protectedHeader } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
          issuer: broker.issuer,
          audience: 'https://deploy.acme.dev',
          typ: 'at+jwt',
          algorithms: ['ES256'],
        });
        expect(protectedHeader.kid).toBeTypeOf('string');
        expect(payload).toMatchObject({
          sub: 'github:acme/api:production',
          aud: 'https://deploy.acme.dev',
          client_id: 'deploy/production',
          scope: 'deploy:write',
          repository: 'acme/api',
          src_iss: github.url,
          src_sub: 'repo:acme/api:environment:production',
        });
        expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);
        // Valid from the second it was issued, not before: an nbf earlier than iat would back-date it.
        expect(payload.nbf).toBe(payload.iat);
        expect(payload.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

        const event = await broker.auditEvent(result.body['audit_event_id'] as string);
        expect(event).toMatchObject({
          decision: 'granted',
          reason: 'granted',
          issuer: github.url,
          subject: 'repo:acme/api:environment:production',
          policy: { granted_by: 'deploy/production' },
          issued: { jti: payload.jti, aud: ['https://deploy.acme.dev'], scope: ['deploy:write'], exp: payload.exp },
        });
        expect(event?.claims).toMatchObject({ repository_id: '734201', ref: 'refs/heads/main', environment: 'production' });
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(subjectToken)));
        expect(event?.subject_token?.sha256).toBe([...digest].map((b) => b.toString(16).padStart(2, '0')).join(''));
        expect(JSON.stringify(event)).not.toContain(subjectToken);
        expect(JSON.stringify(event)).not.toContain(accessToken);
      });

      it('issues the default audience and every granted scope when the caller names none', async () => {
        const result = await postToken(broker, exchangeForm(await good()));
        expect(result.status).toBe(200);
        expect(result.body['scope']).toBe('deploy:write artifacts:read');
        const payload = JSON.parse(new TextDecoder().decode(base64url.decode((result.body['access_token'] as string).split('.')[1] as string)));
        expect(payload.aud).toBe('https://deploy.acme.dev');
      });

      it('compares GitHub repository names case-insensitively, as GitHub does', async () => {
        const result = await postToken(broker, exchangeForm(await good({ repository: 'ACME/Api' })));
        expect(result.status).toBe(200);
      });

      it('compares GitHub environment names case-insensitively, as GitHub does: a deny on production holds for PRODUCTION', async () => {
        const bot = { repository_id: '734304', actor: 'dependabot[bot]' };
        for (const environment of ['production', 'PRODUCTION']) {
          await refused(exchangeForm(await good({ ...bot, environment })), { error: 'invalid_request', reason: 'denied_by_policy' });
        }
        expect((await postToken(broker, exchangeForm(await good({ ...bot, environment: 'staging' })))).status).toBe(200);
        // An allow policy's environment, likewise: GitHub runs the job in the one environment, whatever case its workflow writes.
        expect((await postToken(broker, exchangeForm(await good({ environment: 'Production' })))).status).toBe(200);
      });

      it('compares the ref after a workflow ref’s @ exactly: its owner and repository names fold, the tag does not', async () => {
        const pinned = 'acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0';
        expect((await postToken(broker, exchangeForm(await good({ job_workflow_ref: pinned.replace('acme/workflows', 'ACME/Workflows') })))).status).toBe(200);
        await refused(exchangeForm(await good({ job_workflow_ref: pinned.replace('refs/tags/v', 'refs/tags/V') })), {
          error: 'invalid_request',
          reason: 'no_policy_matched',
        });
        await refused(exchangeForm(await good({ job_workflow_ref: pinned.replace('refs/tags', 'refs/TAGS') })), {
          error: 'invalid_request',
          reason: 'no_policy_matched',
        });
      });

      it.each([
        ['glob', '734301'],
        ['regex', '734302'],
      ])('a %s pinning a workflow ref to main cannot be reached through a branch whose name carries @refs/heads/main', async (_kind, repositoryId) => {
        const workflowRef = (ref: string) => ({ repository_id: repositoryId, workflow_ref: `acme/api/.github/workflows/deploy.yml@${ref}` });
        const main = await postToken(broker, exchangeForm(await good(workflowRef('refs/heads/main')), { audience: 'https://main-only.example' }));
        expect(main.status).toBe(200);
        const { event } = await refused(exchangeForm(await good(workflowRef('refs/heads/evil@refs/heads/main')), { audience: 'https://main-only.example' }), {
          error: 'invalid_request',
          reason: 'no_policy_matched',
        });
        expect(event.claims).toMatchObject({ workflow_ref: 'acme/api/.github/workflows/deploy.yml@refs/heads/evil@refs/heads/main' });
      });

      it.each([
        ['glob', '734305'],
        ['regex', '734306'],
      ])('a customised sub %s pinning its job_workflow_ref to main cannot be reached through a branch named x@refs/heads/main', async (_kind, repositoryId) => {
        const customised = (ref: string) => ({
          repository_id: repositoryId,
          sub: `repo:acme/api:job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@${ref}`,
        });
        const main = await postToken(broker, exchangeForm(await good(customised('refs/heads/main')), { audience: 'https://main-only.example' }));
        expect(main.status).toBe(200);
        const { event } = await refused(exchangeForm(await good(customised('refs/heads/x@refs/heads/main')), { audience: 'https://main-only.example' }), {
          error: 'invalid_request',
          reason: 'no_policy_matched',
        });
        expect(event.subject).toBe('repo:acme/api:job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/heads/x@refs/heads/main');
      });

      it('publishes RFC 8414 and OpenID metadata naming the token endpoint and JWKS', async () => {
        for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
          const metadata = (await (await broker.request(path)).json()) as Record<string, unknown>;
          expect(metadata).toMatchObject({
            issuer: broker.issuer,
            token_endpoint: `${broker.issuer}/token`,
            jwks_uri: `${broker.issuer}/.well-known/jwks.json`,
            grant_types_supported: [GRANT_TYPE, 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'client_credentials'],
            token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
          });
        }
      });
    });

    describe('policy decisions', () => {
      it('deny beats allow: a guardrail refuses pull_request_target even when the allow policy matches', async () => {
        const { event } = await refused(exchangeForm(await good({ event_name: 'pull_request_target' })), {
          error: 'invalid_request',
          reason: 'denied_by_policy',
        });
        expect(event.policy?.denied_by).toEqual(['guardrails/untrusted-triggers']);
      });

      it('a guardrail that names no subject_audience holds for every audience: asking for an allow policy’s own audience does not step around it', async () => {
        const minted = (eventName: string) =>
          github.sign(ciClaims(github.url, 'https://own-audience.example', { repository_id: '734303', event_name: eventName }));
        const asked = { audience: 'https://own-audience-api.example' };
        expect((await postToken(broker, exchangeForm(await minted('push'), asked))).status).toBe(200);
        const { event } = await refused(exchangeForm(await minted('pull_request_target'), asked), { error: 'invalid_request', reason: 'denied_by_policy' });
        expect(event.policy?.denied_by).toEqual(['guardrails/untrusted-triggers']);
      });

      it('an allow policy takes only tokens minted for its subject_audience: one minted for another policy’s audience is not the broker’s', async () => {
        // The claims deploy/production matches, in a token minted for own-audience/deploy's audience rather than the broker's.
        const elsewhere = await github.sign(ciClaims(github.url, 'https://own-audience.example'));
        const { event } = await refused(exchangeForm(elsewhere, { audience: 'https://deploy.acme.dev' }), {
          error: 'invalid_request',
          reason: 'no_policy_matched',
        });
        expect(event.policy?.granted_by).toBeUndefined();
      });

      it.each([
        'issue_comment',
        'discussion_comment',
        'issues',
        'discussion',
        'pull_request_review',
        'pull_request_review_comment',
        'fork',
        'watch',
        'gollum',
        'check_run',
        'check_suite',
        'status',
      ])('the shipped guardrail refuses %s, a trigger that runs what others wrote, or others start, with the repository’s identity', async (trigger) => {
        const { event } = await refused(exchangeForm(await good({ event_name: trigger })), { error: 'invalid_request', reason: 'denied_by_policy' });
        expect(event.policy?.denied_by).toEqual(['guardrails/untrusted-triggers']);
      });

      it('denies by default when no allow policy matches', async () => {
        await refused(exchangeForm(await good({ ref: 'refs/heads/feature' })), { error: 'invalid_request', reason: 'no_policy_matched' });
      });

      it('refuses a resurrected repository name with a different id', async () => {
        await refused(exchangeForm(await good({ repository_id: '999999' })), { error: 'invalid_request', reason: 'no_policy_matched' });
      });

      it('refuses a claim value holding its template’s delimiter, which would forge another-looking subject', async () => {
        const templated = (claims: Record<string, unknown>) => {
          const now = Math.floor(Date.now() / 1000);
          return generic.sign({ iss: generic.url, aud: broker.issuer, sub: 'svc-templated', iat: now, exp: now + 300, jti: crypto.randomUUID(), ...claims });
        };
        const fine = await postToken(broker, exchangeForm(await templated({ team: 'ops', env: 'prod-eu' })));
        expect(fine.status).toBe(200);
        const payload = JSON.parse(new TextDecoder().decode(base64url.decode((fine.body['access_token'] as string).split('.')[1] as string)));
        expect(payload.sub).toBe('team:ops:env:prod-eu');

        const { event } = await refused(exchangeForm(await templated({ team: 'ops', env: 'dev:team:admin' })), {
          error: 'invalid_request',
          reason: 'template_value_forbidden',
        });
        expect(event.detail).toBe('generic/templated grant.subject: {env} holds ":", a delimiter of the template');
        const control = await refused(exchangeForm(await templated({ team: 'ops\nteam:admin', env: 'prod' })), {
          error: 'invalid_request',
          reason: 'template_value_forbidden',
        });
        expect(control.event.detail).toContain('{team} holds U+000A');
        const fullWidth = await refused(exchangeForm(await templated({ team: 'ops', env: 'dev\uFF1Ateam\uFF1Aadmin' })), {
          error: 'invalid_request',
          reason: 'template_value_forbidden',
        });
        expect(fullWidth.event.detail).toBe('generic/templated grant.subject: {env} holds ":" once normalized (NFKC), a delimiter of the template');
        // No normal form makes U+2236 RATIO a colon, yet a reader of the subject cannot tell it from one.
        const ratio = await refused(exchangeForm(await templated({ team: 'ops', env: 'dev\u2236team\u2236admin' })), {
          error: 'invalid_request',
          reason: 'template_value_forbidden',
        });
        expect(ratio.event.detail).toBe('generic/templated grant.subject: {env} holds U+2236, which looks like ":", a delimiter of the template');
      });

      it('refuses scope escalation with invalid_scope', async () => {
        await refused(exchangeForm(await good(), { scope: 'deploy:write admin' }), { error: 'invalid_scope', reason: 'scope_not_granted' });
      });

      it('refuses audience escalation with invalid_target', async () => {
        await refused(exchangeForm(await good(), { audience: 'https://evil.example' }), { error: 'invalid_target', reason: 'audience_not_granted' });
        await refused(exchangeForm(await good(), { audience: 'https://deploy.acme.dev', resource: 'https://evil.example/' }), {
          error: 'invalid_target',
          reason: 'audience_not_granted',
        });
      });

      it('issues to several granted audiences at once', async () => {
        const audiences = ['https://deploy.acme.dev', 'https://artifacts.acme.dev'];
        const result = await postToken(broker, exchangeForm(await good(), { audience: audiences }));
        expect(result.status).toBe(200);
        const payload = JSON.parse(new TextDecoder().decode(base64url.decode((result.body['access_token'] as string).split('.')[1] as string)));
        expect(payload.aud).toEqual(audiences);
        expect(await broker.auditEvent(result.body['audit_event_id'] as string)).toMatchObject({ issued: { aud: audiences } });
      });
    });

    describe('subject token attacks', () => {
      it('refuses alg none', async () => {
        const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
        const payload = base64url.encode(JSON.stringify(ciClaims(github.url, broker.issuer)));
        await refused(exchangeForm(`${header}.${payload}.`), { error: 'invalid_request', reason: 'algorithm_not_allowed' });
      });

      it('refuses HS256 keyed with the issuer public key (algorithm confusion)', async () => {
        const { keys } = await github.jwks();
        const publicKeyBytes = new TextEncoder().encode(JSON.stringify(keys[0]));
        const forged = await new SignJWT(ciClaims(github.url, broker.issuer))
          .setProtectedHeader({ alg: 'HS256', kid: String(keys[0]?.['kid']) })
          .sign(publicKeyBytes);
        await refused(exchangeForm(forged), { error: 'invalid_request', reason: 'algorithm_not_allowed' });
      });

      it('refuses a token with flipped signature bits', async () => {
        const [header, payload, signature] = (await good()).split('.') as [string, string, string];
        const bytes = base64url.decode(signature);
        bytes[10] = (bytes[10] as number) ^ 0x01;
        await refused(exchangeForm(`${header}.${payload}.${base64url.encode(bytes)}`), { error: 'invalid_request', reason: 'signature_invalid' });
      });

      it('refuses a valid signature moved onto another payload', async () => {
        const allowed = (await good()).split('.');
        const other = (await good({ environment: 'staging', ref: 'refs/heads/dev' })).split('.');
        await refused(exchangeForm(`${allowed[0]}.${other[1]}.${allowed[2]}`), { error: 'invalid_request', reason: 'signature_invalid' });
      });

      it('refuses a token signed by a foreign key that claims a published kid', async () => {
        const forged = await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' });
        await refused(exchangeForm(forged), { error: 'invalid_request', reason: 'signature_invalid' });
      });

      it('refuses a token from a second trusted issuer that claims the first one’s iss', async () => {
        const forged = await generic.sign(ciClaims(github.url, broker.issuer));
        await refused(exchangeForm(forged), { error: 'invalid_request', reason: 'signature_invalid' });
      });

      it('never follows jku, x5u or an embedded jwk, and never contacts the URLs they name', async () => {
        const trap = `${github.url}/trap/keys`;
        const attacker = await github.jwks();
        for (const header of [{ jku: trap }, { x5u: trap }, { jwk: attacker.keys[0] }, { x5c: ['MIIB'] }]) {
          const forged = await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign', header });
          await refused(exchangeForm(forged), { error: 'invalid_request', reason: 'header_forbidden' });
        }
        expect((await github.hits()).trap).toBe(0);
      });

      it('refuses expired, not-yet-valid and too-old tokens', async () => {
        const now = Math.floor(Date.now() / 1000);
        await refused(exchangeForm(await good({ iat: now - 400, exp: now - 100 })), { error: 'invalid_request', reason: 'token_expired' });
        await refused(exchangeForm(await good({ nbf: now + 600, exp: now + 900 })), { error: 'invalid_request', reason: 'token_not_yet_valid' });
        // GitHub tokens are accepted up to 10 minutes after iat, whatever exp says.
        await refused(exchangeForm(await good({ iat: now - 3600, exp: now + 600 })), { error: 'invalid_request', reason: 'token_too_old' });
      });

      it('accepts a token within the 60 second clock skew', async () => {
        const now = Math.floor(Date.now() / 1000);
        const result = await postToken(broker, exchangeForm(await good({ iat: now + 30, nbf: now + 30, exp: now + 300 })));
        expect(result.status).toBe(200);
      });

      it('refuses a token minted for another audience (the CI default)', async () => {
        await refused(exchangeForm(await good({ aud: 'https://github.com/acme' })), { error: 'invalid_request', reason: 'audience_mismatch' });
      });

      it('refuses claims of the wrong type instead of coercing them', async () => {
        await refused(exchangeForm(await good({ repository_id: 734201 })), { error: 'invalid_request', reason: 'claims_invalid' });
        await refused(exchangeForm(await good({ repository: ['acme/api', 'evil/x'] })), { error: 'invalid_request', reason: 'claims_invalid' });
        await refused(exchangeForm(await good({ sub: { toString: 'repo:acme/api' } })), { error: 'invalid_request', reason: 'claims_invalid' });
        await refused(exchangeForm(await good({ exp: String(Math.floor(Date.now() / 1000) + 300) })), { error: 'invalid_request', reason: 'claims_invalid' });
        // A time that is no number is malformed, as that exp is: not a time yet to come, which only a number can be.
        for (const odd of [{ nbf: 'soon' }, { nbf: { after: 0 } }, { nbf: null }, { iat: String(Math.floor(Date.now() / 1000)) }]) {
          await refused(exchangeForm(await good(odd)), { error: 'invalid_request', reason: 'claims_invalid' });
        }
        // JSON's 1e400 is Infinity, which jose takes as a time: an exp that never comes, an nbf that always has.
        const claimsText = JSON.stringify(ciClaims(github.url, broker.issuer));
        for (const [claim, value] of [
          ['exp', '1e400'],
          ['nbf', '-1e400'],
        ] as const) {
          const token = await github.signPayloadText(claimsText.replace(new RegExp(`"${claim}":-?\\d+`), `"${claim}":${value}`));
          expect(decodeJwt(token)[claim]).toBe(Number(value));
          await refused(exchangeForm(token), { error: 'invalid_request', reason: 'claims_invalid' });
        }
      });

      it('refuses a token missing the claims that prove it is a CI job token', async () => {
        const { repository_id: _dropped, ...claims } = ciClaims(github.url, broker.issuer);
        await refused(exchangeForm(await github.sign(claims)), { error: 'invalid_request', reason: 'claims_invalid' });
      });

      it('refuses a token without exp, iat or sub: a token with no end is no proof of a running job', async () => {
        for (const missing of ['exp', 'iat', 'sub'] as const) {
          const { [missing]: _dropped, ...claims } = ciClaims(github.url, broker.issuer);
          await refused(exchangeForm(await github.sign(claims)), { error: 'invalid_request', reason: 'claims_invalid' });
        }
      });

      it('treats an injected kid as an unknown key: no lookup by it, at most one refetch per cooldown', async () => {
        // The issuer's keys are cached first, whichever tests ran before: only refetches are counted.
        expect((await postToken(broker, exchangeForm(await good()))).status).toBe(200);
        const before = await github.hits();
        for (const kid of ['../../../../etc/passwd', "' OR '1'='1", 'k'.repeat(4000)]) {
          const forged = await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign', header: { kid } });
          await refused(exchangeForm(forged), { error: 'invalid_request', reason: 'signature_invalid' });
        }
        const after = await github.hits();
        expect(after.jwks - before.jwks).toBeLessThanOrEqual(1);
      });

      it('refuses an access token (typ at+jwt) presented as an identity token', async () => {
        await refused(exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { header: { typ: 'at+jwt' } })), {
          error: 'invalid_request',
          reason: 'claims_invalid',
        });
      });

      it('refuses an access token whatever the case of its typ: media types compare without case (RFC 7515 §4.1.9)', async () => {
        for (const typ of ['AT+JWT', 'Application/At+Jwt']) {
          await refused(exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { header: { typ } })), {
            error: 'invalid_request',
            reason: 'claims_invalid',
          });
        }
      });

      it('refuses a token whose issuer no policy trusts, without contacting it', async () => {
        const stranger = freshIssuer(issuerBase(), 'stranger');
        const { event } = await refused(exchangeForm(await stranger.sign(ciClaims(stranger.url, broker.issuer))), {
          error: 'invalid_request',
          reason: 'issuer_untrusted',
        });
        expect(event.subject_token?.claimed_iss).toBe(stranger.url);
        expect(await stranger.hits()).toEqual({ discovery: 0, jwks: 0, trap: 0 });
      });

      // A stranger guessing which issuers (a GHES or GitLab host, a cluster) the policies trust learns nothing from the answer.
      it('answers a forgery naming a trusted issuer as one naming an untrusted issuer, whatever its algorithm: only the record tells them apart', async () => {
        const ask = async (iss: string, alg: string, header: Record<string, unknown> = {}, signature = 'AAAA') => {
          const forged = [
            base64url.encode(JSON.stringify({ alg, kid: 'guess', ...header })),
            base64url.encode(JSON.stringify(ciClaims(iss, broker.issuer))),
            signature,
          ].join('.');
          const answer = await postToken(broker, exchangeForm(forged));
          const event = await broker.auditEvent(answer.body['audit_event_id'] as string);
          return { answer: { status: answer.status, error: answer.body['error'], error_description: answer.body['error_description'] }, reason: event?.reason };
        };
        const untrusted = await ask('https://gitlab.internal.example', 'RS256');
        const trusted = await ask(github.url, 'RS256');
        const trustedOtherAlg = await ask(github.url, 'HS256');
        expect(trusted.answer).toEqual(untrusted.answer);
        expect(trustedOtherAlg.answer).toEqual(untrusted.answer);
        expect([untrusted.reason, trusted.reason, trustedOtherAlg.reason]).toEqual(['issuer_untrusted', 'signature_invalid', 'algorithm_not_allowed']);
        // Nor a JWS its issuer's keys are never tried on for want of form: an empty crit or one naming an extension the broker
        // does not know (refused once its issuer is known), a signature that is not base64url (refused before any issuer is looked up).
        for (const [header, signature, reason] of [
          [{ crit: [] }, 'AAAA', 'signature_invalid'],
          [{ crit: ['x-keyway-test'], 'x-keyway-test': true }, 'AAAA', 'signature_invalid'],
          [{}, 'AA*A', 'token_malformed'],
        ] as const) {
          const fromTrusted = await ask(github.url, 'RS256', header, signature);
          expect(fromTrusted.answer, signature).toEqual((await ask('https://gitlab.internal.example', 'RS256', header, signature)).answer);
          expect(fromTrusted.reason, signature).toBe(reason);
        }
      });
    });

    describe('malformed requests get RFC 6749 errors and an audit record, never a 5xx', () => {
      it('refuses a wrong or missing grant_type', async () => {
        await refused(new URLSearchParams({ grant_type: 'password', subject_token: 'a.b.c', subject_token_type: ID_TOKEN }), {
          error: 'unsupported_grant_type',
          reason: 'unsupported_grant_type',
        });
        await refused(new URLSearchParams({ subject_token: 'a.b.c', subject_token_type: ID_TOKEN }), { error: 'invalid_request', reason: 'malformed_request' });
        await refused('', { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('refuses repeated single-valued parameters, bad token types, and delegation no policy takes', async () => {
        const token = await good();
        await refused(exchangeForm(token, { subject_token: token }), { error: 'invalid_request', reason: 'malformed_request' });
        await refused(exchangeForm(token).toString().replace(encodeURIComponent(ID_TOKEN), 'saml2'), { error: 'invalid_request', reason: 'malformed_request' });
        // No policy here has match_actor, so none grants a request with an actor (test/suites/delegation-suite.ts has those that do).
        await refused(exchangeForm(token, { actor_token: token, actor_token_type: ID_TOKEN }), { error: 'invalid_request', reason: 'no_policy_matched' });
        await refused(exchangeForm(token, { actor_token: token }), { error: 'invalid_request', reason: 'malformed_request' });
        await refused(exchangeForm(token, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), {
          error: 'invalid_request',
          reason: 'malformed_request',
        });
        await refused(exchangeForm(token, { scope: 'bad"scope' }), { error: 'invalid_request', reason: 'malformed_request' });
        await refused(exchangeForm(token, { resource: 'not a uri' }), { error: 'invalid_target', reason: 'target_malformed' });
      });

      it('refuses subject tokens that are not JWTs', async () => {
        for (const token of ['garbage', 'a.b', '....', '%%%.%%%.%%%', 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln']) {
          await refused(exchangeForm(token), { error: 'invalid_request', reason: 'token_malformed' });
        }
        // Three well-formed parts, but nothing in them: no issuer to trust.
        await refused(exchangeForm('e30.e30.'), { error: 'invalid_request', reason: 'issuer_untrusted' });
      });

      it('refuses an iss or alg nested deeper than JSON.stringify can recurse, unsigned, with a 400 and a record, never a 500', async () => {
        // 5000 arrays deep: JSON.parse takes it, JSON.stringify runs out of stack; about 13 KB as a token, under its 16 KB.
        const nested = `${'['.repeat(5000)}${']'.repeat(5000)}`;
        const unsigned = (header: string, payload: string) => `${base64url.encode(header)}.${base64url.encode(payload)}.${'A'.repeat(43)}`;
        const deepIss = unsigned('{"alg":"RS256"}', `{"iss":${nested}}`);
        await refused(exchangeForm(deepIss), { error: 'invalid_request', reason: 'issuer_untrusted' });
        await refused(exchangeForm(unsigned(`{"alg":${nested}}`, JSON.stringify(ciClaims(github.url, broker.issuer)))), {
          error: 'invalid_request',
          reason: 'algorithm_not_allowed',
        });
        await refused(exchangeForm(await good(), { actor_token: deepIss, actor_token_type: ID_TOKEN }), {
          error: 'invalid_request',
          reason: 'issuer_untrusted',
        });
      });

      it('refuses bodies that are not form-encoded', async () => {
        const unsupported = { status: 415, error: 'invalid_request', reason: 'unsupported_media_type' } as const;
        await refused(JSON.stringify({ grant_type: GRANT_TYPE }), unsupported, 'application/json');
        await refused(new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80]), unsupported, 'application/octet-stream');
        await refused(new Uint8Array([0x61, 0x3d, 0xff, 0xfe, 0x26]), { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('refuses a huge body with 413 and a huge token with 400', async () => {
        // Its connection is not reused: the Node server (@hono/node-server) stops draining the unread rest after 500 ms and
        // destroys the socket, failing whichever later request is on it then (seen with shuffled tests on a loaded machine).
        const response = await broker.request('/token', {
          method: 'POST',
          body: `grant_type=${encodeURIComponent(GRANT_TYPE)}&pad=${'x'.repeat(200_000)}`,
          headers: { 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
        });
        const huge = { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
        const event = await expectRefusal(broker, huge, { status: 413, error: 'invalid_request', reason: 'request_too_large' });
        expect(event.decision).toBe('malformed');
        await refused(exchangeForm(`${'a'.repeat(20_000)}.b.c`), { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('quotes the request back only in characters RFC 6749 allows in an error_description, and cuts a long quote', async () => {
        const token = await good();
        const github = { requested_token_type: 'urn:keyway:params:oauth:token-type:github-installation-token' };
        // An audience that is no repository is quoted back: a quote, a backslash, a control character, non-ASCII, an emoji.
        const odd = await refused(exchangeForm(token, { ...github, audience: 'acme/"app"\\\u0007café😀' }), {
          error: 'invalid_target',
          reason: 'github_repository_not_granted',
        });
        expect(odd.body['error_description']).toBe("the requested resource acme/'app'??caf?? is not a repository: use resource https://github.com/OWNER/REPO");
        // The record keeps what was sent.
        expect(odd.event.detail).toContain('acme/"app"\\\u0007café😀');
        const long = await refused(exchangeForm(token, { ...github, audience: `acme/${'x'.repeat(2000)}` }), {
          error: 'invalid_target',
          reason: 'github_repository_not_granted',
        });
        expect(long.body['error_description']).toBe(`the requested resource acme/${'x'.repeat(481)}...`);
      });

      // With a GitHub App, another account's job asking for a repository's own policy is answered as a missing policy
      // (github-exchange-suite.ts): without one, the answer must be that too, or a stranger learns the broker has no App.
      it("answers another account's job asking for a repository's own policy as a missing policy, with no GitHub App configured", async () => {
        const stranger = await good({
          sub: 'repo:mallory/tools:ref:refs/heads/main',
          repository: 'mallory/tools',
          repository_id: '666',
          repository_owner: 'mallory',
          repository_owner_id: '888',
        });
        const asked = exchangeForm(stranger, {
          requested_token_type: 'urn:keyway:params:oauth:token-type:github-installation-token',
          resource: 'https://github.com/acme/api',
          scope: 'policy:deploy contents:read',
        });
        const { body, event } = await refused(asked, { error: 'invalid_request', reason: 'no_policy_matched' });
        expect(body['error_description']).toBe('no trust policy grants this request');
        expect(event.detail).toContain("acme/api's own policies grant only GitHub Actions jobs of acme's account");
      });

      it('answers GET /token with 405 and an RFC 6749 error', async () => {
        const response = await broker.request('/token');
        expect(response.headers.get('allow')).toBe('POST');
        const answer = { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
        await expectRefusal(broker, answer, { status: 405, error: 'invalid_request', reason: 'method_not_allowed' });
      });
    });

    describe('issuer keys', () => {
      it('follows an issuer key rotation: an unknown kid triggers one refetch', async () => {
        const rotating = freshIssuer(issuerBase(), 'rotating');
        const rotatingBroker = await start(suitePolicies(rotating, generic));
        try {
          const before = await rotatingBroker.request('/token', {
            method: 'POST',
            body: exchangeForm(await rotating.sign(ciClaims(rotating.url, rotatingBroker.issuer))),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          });
          expect(before.status).toBe(200);
          const newKid = await rotating.rotate();
          const token = await rotating.sign(ciClaims(rotating.url, rotatingBroker.issuer));
          expect(decodeProtectedHeader(token).kid).toBe(newKid);
          const after = await rotatingBroker.request('/token', {
            method: 'POST',
            body: exchangeForm(token),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          });
          expect(after.status).toBe(200);
          expect((await rotating.hits()).jwks).toBe(2);
        } finally {
          await rotatingBroker.close();
        }
      });

      it("verifies a token with each of its issuer's keys that carry its kid: a rollover that reused a kid refuses none of the issuer's tokens", async () => {
        const reusing = freshIssuer(issuerBase(), 'reused-kid');
        await reusing.rotate({ keepOld: true });
        // The new key published beside the old under the old one's kid: the issuer signs with the new, the second listed.
        const [first, second] = (await reusing.jwks()).keys as [JWK, JWK];
        const kid = first.kid as string;
        await reusing.settings({ jwks: { kind: 'replaced', body: { keys: [first, { ...second, kid }] } } });
        const reusingBroker = await start(suitePolicies(reusing, generic));
        const sign = (overrides: Record<string, unknown> = {}, key: 'published' | 'foreign' = 'published') =>
          reusing.sign(ciClaims(reusing.url, reusingBroker.issuer, overrides), { header: { kid }, key });
        try {
          const granted = await postToken(reusingBroker, exchangeForm(await sign()));
          expect(granted.status, JSON.stringify(granted.body)).toBe(200);
          // The key that verified decides the rest: a token it signed is judged on its claims.
          const now = Math.floor(Date.now() / 1000);
          const expired = await postToken(reusingBroker, exchangeForm(await sign({ iat: now - 400, exp: now - 100 })));
          await expectRefusal(reusingBroker, expired, { error: 'invalid_request', reason: 'token_expired' });
          // A key that is not the issuer's is refused under that kid as under any other.
          const forged = await postToken(reusingBroker, exchangeForm(await sign({}, 'foreign')));
          await expectRefusal(reusingBroker, forged, { error: 'invalid_request', reason: 'signature_invalid' });
          // A token naming no kid matches every key: it is not tried with each, though one of them signed it.
          const kidless = await reusing.sign(ciClaims(reusing.url, reusingBroker.issuer), { header: { kid: null } });
          expect(decodeProtectedHeader(kidless)).not.toHaveProperty('kid');
          await expectRefusal(reusingBroker, await postToken(reusingBroker, exchangeForm(kidless)), { error: 'invalid_request', reason: 'signature_invalid' });
        } finally {
          await reusingBroker.close();
        }
      });

      it('tries at most four keys under one kid: an issuer listing more cannot make each token cost as many signature checks', async () => {
        /** An issuer whose JWKS lists `count` keys under one kid, the one it signs with last. */
        const listing = async (count: number) => {
          const issuer = freshIssuer(issuerBase(), `kid-times-${count}`);
          for (let rotation = 1; rotation < count; rotation++) await issuer.rotate({ keepOld: true });
          const keys = (await issuer.jwks()).keys as JWK[];
          const kid = keys[0]!.kid as string;
          await issuer.settings({ jwks: { kind: 'replaced', body: { keys: keys.map((key) => ({ ...key, kid })) } } });
          return { issuer, kid };
        };
        for (const [count, status] of [
          [4, 200],
          [5, 400],
        ] as const) {
          const { issuer, kid } = await listing(count);
          const listingBroker = await start(suitePolicies(issuer, generic));
          try {
            const answer = await postToken(listingBroker, exchangeForm(await issuer.sign(ciClaims(issuer.url, listingBroker.issuer), { header: { kid } })));
            expect(answer.status, `${count} keys: ${JSON.stringify(answer.body)}`).toBe(status);
            if (status === 400) await expectRefusal(listingBroker, answer, { error: 'invalid_request', reason: 'signature_invalid' });
          } finally {
            await listingBroker.close();
          }
        }
        // Keys that will not import count too (jose passes over them unseen, and would import them again for each token).
        await expectOffCurveRefusal('kid-off-curve', (key, offCurve) => [...Array(4).fill(offCurve), key]);
      });

      it('takes issuer keys up to 256 KiB, and counts an issuer whose JWKS is larger as unavailable: 503, audited, no token', async () => {
        const padded = freshIssuer(issuerBase(), 'padded');
        const oversized = freshIssuer(issuerBase(), 'oversized');
        await padded.settings({ jwks: { kind: 'padded', bytes: 256 * 1024, declared: false } });
        await oversized.settings({ jwks: { kind: 'padded', bytes: 256 * 1024 + 1, declared: false } });
        const boundedBroker = await start(suitePolicies(padded, oversized));
        try {
          expect((await postToken(boundedBroker, exchangeForm(await padded.sign(ciClaims(padded.url, boundedBroker.issuer))))).status).toBe(200);
          const now = Math.floor(Date.now() / 1000);
          const token = await oversized.sign({ iss: oversized.url, aud: boundedBroker.issuer, sub: 'svc-b', iat: now, exp: now + 300 });
          const answer = await postToken(boundedBroker, exchangeForm(token));
          expect(answer.status).toBe(503);
          expect(answer.body['error']).toBe('temporarily_unavailable');
          expect(answer.body).not.toHaveProperty('access_token');
          expect(await boundedBroker.auditEvent(answer.body['audit_event_id'] as string)).toMatchObject({ decision: 'error', reason: 'issuer_unavailable' });
        } finally {
          await boundedBroker.close();
        }
      });

      it("refuses a token whose issuer's key for its kid will not import (a point off the curve): 400, audited, no token, never a 500", async () => {
        await expectOffCurveRefusal('broken-key', (_key, offCurve) => [offCurve]);
      });

      /**
       * An ES256 token of an issuer whose JWKS `listed` makes of its key and that key with its point off the curve (all under
       * its kid), sent to a broker trusting that issuer: refused as signature_invalid, never a 500.
       */
      async function expectOffCurveRefusal(name: string, listed: (key: JWK, offCurve: JWK) => JWK[]): Promise<void> {
        const issuer = freshIssuer(issuerBase(), name);
        await issuer.rotate({ alg: 'ES256' });
        const [key] = (await issuer.jwks()).keys as [JWK];
        const zeros = base64url.encode(new Uint8Array(32));
        await issuer.settings({ jwks: { kind: 'replaced', body: { keys: listed(key, { ...key, x: zeros, y: zeros }) } } });
        const issuerBroker = await start({
          'off-curve.yaml': `version: 1\nissuer: { kind: oidc, url: "${issuer.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-c }\ngrant: { audience: https://a.example }\n`,
        });
        try {
          const token = await issuer.sign(ciClaims(issuer.url, issuerBroker.issuer, { sub: 'svc-c' }), { alg: 'ES256' });
          await expectRefusal(issuerBroker, await postToken(issuerBroker, exchangeForm(token)), { error: 'invalid_request', reason: 'signature_invalid' });
        } finally {
          await issuerBroker.close();
        }
      }

      it('keeps verifying with cached keys through an issuer outage, and says 503 when it has none', async () => {
        const flaky = freshIssuer(issuerBase(), 'flaky');
        const cold = freshIssuer(issuerBase(), 'cold');
        await flaky.settings({ cacheControl: 'no-cache' });
        // Keys are stale right away, so every exchange tries a refetch; within the stale window, cached keys still verify.
        const policy = { minFreshSeconds: 0, maxFreshSeconds: 0, defaultFreshSeconds: 0, staleIfErrorSeconds: 3600, refetchCooldownSeconds: 0 };
        const outageBroker = await start({ ...suitePolicies(flaky, cold) }, { jwksCachePolicy: policy });
        const post = async (token: string) => postToken(outageBroker, exchangeForm(token));
        try {
          expect((await post(await flaky.sign(ciClaims(flaky.url, outageBroker.issuer)))).status).toBe(200);
          await flaky.settings({ down: true });
          await cold.settings({ down: true });
          const hitsBefore = await flaky.hits();
          expect((await post(await flaky.sign(ciClaims(flaky.url, outageBroker.issuer)))).status).toBe(200);
          expect((await flaky.hits()).discovery).toBeGreaterThan(hitsBefore.discovery);

          const unavailable = await post(
            await cold.sign({
              iss: cold.url,
              aud: outageBroker.issuer,
              sub: 'svc-b',
              iat: Math.floor(Date.now() / 1000),
              exp: Math.floor(Date.now() / 1000) + 300,
            }),
          );
          const event = await expectRefusal(outageBroker, unavailable, { status: 503, error: 'temporarily_unavailable', reason: 'issuer_unavailable' });
          expect(event.decision).toBe('error');
        } finally {
          await outageBroker.close();
        }
      });
    });
  });
}
