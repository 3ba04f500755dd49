import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import type { Reason } from '../../src/core/errors/reasons.ts';
import { jsonLogger } from '../../src/core/log.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { UPSTREAM_SECRET_PURPOSE } from '../../src/features/proxy/proxy-settings.ts';
import { fakeUpstreamCalls, openFakeUpstreamGate, UPSTREAM_WORDS, type UpstreamCall } from '../support/fake-upstream.ts';
import { athOf, DpopKey } from '../support/dpop-key.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { deliveryRequest, WEBHOOK_SECRET } from '../support/github-webhook-delivery.ts';
import { auditorPolicies, auditorToken } from './audit-api-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';
import { exchangeForm, freshIssuer, ID_TOKEN, postToken, RFC_6749_ERROR_DESCRIPTION, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { ACME_INSTALLATION } from './github-exchange-suite.ts';

/** What a proxy test needs of the runtime beyond the harness: the request target as sent, where the runtime can send one unparsed. */
export interface ProxyRuntime {
  readonly name: string;
  readonly start: StartBroker;
  readonly issuerBase: () => string;
  readonly upstreamBase: () => string;
  readonly githubBase: () => string;
  /** The broker's issuer URL, known before it starts (policies name it). */
  readonly brokerIssuer: string;
  /** A master key the broker is given (KEYWAY_MASTER_KEY), to seal the static upstream secret under. */
  readonly masterKey: () => string;
  /**
   * Sends `target` exactly as written (Node: the request line); undefined where the harness makes a Request, whose URL
   * is parsed first (the workerd harness; proxy-dot-segments-suite.ts sends targets as sent on both runtimes).
   */
  readonly sendRaw?: (broker: BrokerHarness, target: string, headers: Record<string, string>) => Promise<Response>;
  /** Writes these bytes on a socket to the broker and returns the status line of what comes back (Node). */
  readonly sendBytes?: (broker: BrokerHarness, bytes: string) => Promise<string>;
}

/** The upstream's secret: it must never reach the caller, a refusal or a log line. */
const STATIC_SECRET = `upstream-secret-${crypto.randomUUID()}`;

export function proxySuite(runtime: ProxyRuntime): void {
  describe(`proxy mode on ${runtime.name}`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    const tenant = `p${crypto.randomUUID().slice(0, 8)}`;
    const logLines: string[] = [];
    const upstreamCalls = (): Promise<UpstreamCall[]> => fakeUpstreamCalls(runtime.upstreamBase(), tenant);
    const errorsLogged = (requestId: string | null): unknown[] =>
      logLines
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .filter((entry) => entry['level'] === 'error' && entry['request_id'] === requestId)
        .map((entry) => entry['message']);

    beforeAll(async () => {
      issuer = freshIssuer(runtime.issuerBase(), 'proxy');
      const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: runtime.masterKey() })!);
      // Each sealed for its upstream: a sealed secret copied to another upstream does not open there.
      const sealed = await box.seal(STATIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'vendor');
      const sealedShort = await box.seal(STATIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'short');
      const sealedKeyed = await box.seal(STATIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'keyed');
      const sealedLimited = await box.seal(STATIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'limited');
      const sealedHeaded = await box.seal(STATIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'headed');
      const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
      broker = await runtime.start(
        {
          'proxy/vendor.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/api }
grant:
  proxy:
    upstream: vendor
    allow:
      - { method: GET, path: "/repos/{repository}/**" }
      - { method: POST, path: "/repos/{repository}/issues/*/comments" }
      - { method: GET, path: "/x/**" }
      - { method: PUT, path: "/x/upload" }
      - { method: PUT, path: "/deploy/{ref}" }
`,
          'proxy/jwt.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/jwt }
grant:
  proxy: { upstream: jwt, allow: [{ method: GET, path: "/x/**" }] }
  audience: [${runtime.brokerIssuer}/proxy/keyed, ${runtime.brokerIssuer}/proxy/short]
`,
          // A policy that requires DPoP: /proxy takes a proof only with a DPoP-bound keyway token.
          'proxy/keyed-dpop.yaml': `version: 1
issuer: { kind: oidc, url: "${runtime.brokerIssuer}" }
subject_audience: ${runtime.brokerIssuer}/proxy/short
match: { sub: "${issuer.url}#repo:acme/api:environment:production", client_id: proxy/jwt }
grant:
  proxy: { upstream: short, allow: [{ method: GET, path: "/x/**" }] }
  require_dpop: true
`,
          'proxy/ci-dpop.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/dpop }
grant:
  proxy: { upstream: vendor, allow: [{ method: GET, path: "/x/**" }] }
  require_dpop: true
`,
          // Keyway access tokens presented to /proxy are decided by policies that name the broker as their issuer.
          'proxy/keyed.yaml': `version: 1
issuer: { kind: oidc, url: "${runtime.brokerIssuer}" }
subject_audience: ${runtime.brokerIssuer}/proxy/keyed
match: { sub: "${issuer.url}#repo:acme/api:environment:production", client_id: proxy/jwt }
grant:
  proxy: { upstream: keyed, allow: [{ method: GET, path: "/x/**" }] }
`,
          // A deploy orchestrator acting for acme/act's pipeline (RFC 8693): its keyway tokens for these upstreams name it in act.
          'proxy/delegate.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/act }
match_actor: { iss: "${issuer.url}", repository_owner_id: "1200934", repository: [acme/orchestrator, acme/conductor] }
grant:
  audience: [${runtime.brokerIssuer}/proxy/acted, ${runtime.brokerIssuer}/proxy/delegated]
`,
          // At /proxy the actor a keyway token names in act is the request's actor: match_actor holds it.
          'proxy/acted.yaml': `version: 1
issuer: { kind: oidc, url: "${runtime.brokerIssuer}" }
subject_audience: ${runtime.brokerIssuer}/proxy/acted
match: { client_id: proxy/delegate }
match_actor: { iss: "${issuer.url}", sub: "repo:acme/orchestrator:ref:refs/heads/main" }
grant:
  proxy: { upstream: acted, allow: [{ method: GET, path: "/x/**" }] }
`,
          // Without match_actor, a delegated keyway token is decided on its own claims, as /token decides a subject token's act.
          'proxy/delegated.yaml': `version: 1
issuer: { kind: oidc, url: "${runtime.brokerIssuer}" }
subject_audience: ${runtime.brokerIssuer}/proxy/delegated
match: { client_id: proxy/delegate }
grant:
  proxy: { upstream: delegated, allow: [{ method: GET, path: "/x/**" }] }
`,
          // A policy for an upstream no one declared: its callers, and only they, learn that it is not declared.
          'proxy/ghost.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/ghost }
grant:
  proxy: { upstream: ghost, allow: [{ method: GET, path: "/x/**" }] }
`,
          'proxy/limited.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/limited }
grant:
  proxy: { upstream: limited, allow: [{ method: GET, path: "/x/**" }] }
`,
          // Another account the operator lets call limited too.
          'proxy/limited-partner.yaml': `${header}match: { repository_owner_id: "4040", repository: partner/limited }
grant:
  proxy: { upstream: limited, allow: [{ method: GET, path: "/x/**" }] }
`,
          'proxy/headed.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/headed }
grant:
  proxy: { upstream: headed, allow: [{ method: GET, path: "/x/**" }] }
`,
          'proxy/short.yaml': `${header}match: { repository_owner_id: "1200934", repository: acme/short }
grant:
  proxy: { upstream: short, allow: [{ method: GET, path: "/**" }, { method: PUT, path: "/upload" }] }
`,
        },
        {
          settings: {
            KEYWAY_MASTER_KEY: runtime.masterKey(),
            KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
            // GitHub's workflow webhooks tell which jobs completed: their CI tokens are refused here too.
            KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
            KEYWAY_PROXY_UPSTREAMS: `upstreams:
  vendor:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: static, sealed: "${sealed}" }
    limits: { request_bytes: 4096, response_bytes: 8388608, query_bytes: 256 }
  jwt:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: keyway-jwt, audience: "https://svc.example" }
  keyed:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: static, sealed: "${sealedKeyed}" }
  acted:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: keyway-jwt, audience: "https://acted.example" }
  delegated:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: keyway-jwt, audience: "https://delegated.example" }
  limited:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: static, sealed: "${sealedLimited}" }
    limits: { requests_per_minute: 1 }
  headed:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: static, sealed: "${sealedHeaded}", header: x-api-key, prefix: "" }
  short:
    url: ${runtime.upstreamBase()}/t/${tenant}
    auth: { kind: static, sealed: "${sealedShort}" }
    limits: { response_bytes: 1048576, timeout_seconds: 1 }
`,
          },
          log: jsonLogger({}, { write: (line) => logLines.push(line) }),
        },
      );
    });
    afterAll(() => broker.close());

    const job = (overrides: Record<string, unknown> = {}): Promise<string> => issuer.sign(ciClaims(issuer.url, broker.issuer, overrides));
    const send = async (path: string, init: RequestInit = {}, token?: string): Promise<Response> => {
      const headers = new Headers(init.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token ?? (await job())}`);
      return broker.request(path, { ...init, headers });
    };
    const base64url = (value: unknown) => btoa(JSON.stringify(value)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
    const unsigned = (payload: Record<string, unknown>) => `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(payload)}.`;
    const callsTo = async (path: string): Promise<UpstreamCall[]> => (await upstreamCalls()).filter((call) => call.url.startsWith(`/t/${tenant}${path}`));

    /**
     * keyway's own refusal: the status, the RFC 6749 error, Keyway-Error (the reason, or the name it shares with others
     * so a stranger learns nothing of the policies), no token, no-store, and its audit record.
     */
    async function expectKeywayRefusal(response: Response, status: number, error: string, reason: Reason, keywayError: string = reason): Promise<AuditEvent> {
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(response.headers.get('keyway-error')).toBe(keywayError);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(body['error']).toBe(error);
      expect(body['error_description']).toMatch(RFC_6749_ERROR_DESCRIPTION);
      expect(body).not.toHaveProperty('access_token');
      expect(JSON.stringify(body)).not.toContain(STATIC_SECRET);
      const event = await broker.auditEvent(body['audit_event_id'] as string);
      expect(event?.reason).toBe(reason);
      return event!;
    }

    it("refuses a finished job's CI token once GitHub's webhook said the job completed, whatever its audience, and calls nothing; its sibling's still calls", async () => {
      const [run, finished, sibling] = ['81001', '81002', '81003'].map((id) => `${id}${Math.floor(Math.random() * 1000)}`) as [string, string, string];
      const claims = (checkRunId: string) => ({ run_id: run, run_attempt: '1', check_run_id: checkRunId });
      const { init } = await deliveryRequest({
        event: 'workflow_job',
        payload: {
          action: 'completed',
          workflow_job: {
            id: Number(finished),
            run_id: Number(run),
            run_attempt: 1,
            status: 'completed',
            check_run_url: `https://api.github.com/repos/acme/api/check-runs/${finished}`,
          },
          // On the GitHub of the jobs' issuer: a GitHub Enterprise Server serves its REST API on the issuer's host.
          repository: { id: 734201, name: 'api', full_name: 'acme/api', owner: { login: 'acme' }, url: `${new URL(issuer.url).origin}/api/v3/repos/acme/api` },
          installation: { id: 71 },
        },
      });
      expect((await broker.request('/webhooks/github', init)).status).toBe(200);
      const before = (await callsTo('/x/finished')).length;
      const refused = await send('/proxy/vendor/x/finished', {}, await job(claims(finished)));
      const event = await expectKeywayRefusal(refused, 400, 'invalid_request', 'ci_work_ended');
      expect(event.detail).toBe(`the job (check run ${finished}) of run ${run} attempt 1 completed (GitHub's webhook said so) before this request`);
      // Its token for an audience no policy accepts is refused as ended too: the answer does not tell which audiences are accepted.
      const elsewhere = await send('/proxy/vendor/x/finished', {}, await job({ ...claims(finished), aud: 'https://elsewhere.example' }));
      await expectKeywayRefusal(elsewhere, 400, 'invalid_request', 'ci_work_ended');
      expect((await callsTo('/x/finished')).length).toBe(before);
      expect((await send('/proxy/vendor/x/finished', {}, await job(claims(sibling)))).status).toBe(200);
    });

    it('makes an allowed request with keyway’s credential, forwards none of the caller’s, passes the answer back, and audits it twice', async () => {
      const token = await job();
      const response = await send(
        '/proxy/vendor/repos/acme/api/issues/7/comments?per_page=5',
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            cookie: 'session=caller',
            dpop: 'not-a-proof',
            'x-forwarded-for': '203.0.113.9',
            'x-forwarded-host': 'evil.example',
            forwarded: 'for=203.0.113.9',
            'x-real-ip': '10.0.0.1',
            'true-client-ip': '10.0.0.1',
            'x-client-ip': '10.0.0.1',
            'x-cluster-client-ip': '10.0.0.1',
            'fastly-client-ip': '10.0.0.1',
            'x-host': 'internal.example',
            'x-original-host': 'internal.example',
            'client-ip': '10.0.0.1',
            'x-originating-ip': '10.0.0.1',
            'x-remote-addr': '10.0.0.1',
            'x-forwarded': 'for=10.0.0.1',
            x_real_ip: '10.0.0.1',
            'forwarded-for': '10.0.0.1',
            via: '1.1 evil.example',
            'x-envoy-external-address': '10.0.0.1',
            'wl-proxy-client-ip': '10.0.0.1',
            'x-original-forwarded-for': '10.0.0.1',
            'x-remote-ip': '10.0.0.1',
            'x-proxyuser-ip': '10.0.0.1',
            'x-azure-clientip': '10.0.0.1',
            'x-appengine-user-ip': '10.0.0.1',
            'cf-connecting-ip': '10.0.0.1',
            'keyway-audit-event-id': 'forged',
            origin: 'https://evil.example',
            referer: 'https://evil.example/page',
            range: 'bytes=0-3',
            'if-range': '"etag"',
            'x-request-note': 'kept',
          },
          body: JSON.stringify({ body: 'built' }),
        },
        token,
      );
      expect(response.status).toBe(200);
      expect(response.headers.get('keyway-error')).toBeNull();
      expect(await response.json()).toEqual({ ok: true });

      const [call, ...more] = await callsTo('/repos/acme/api/issues/7/comments');
      expect(more).toEqual([]);
      expect(call!.url).toBe(`/t/${tenant}/repos/acme/api/issues/7/comments?per_page=5`);
      expect(call!.method).toBe('POST');
      expect(call!.body).toBe('{"body":"built"}');
      expect(call!.headers['authorization']).toBe(`Bearer ${STATIC_SECRET}`);
      expect(call!.headers['x-request-note']).toBe('kept');
      const claimsOfClientOrHost = [
        'x-real-ip',
        'true-client-ip',
        'x-client-ip',
        'x-cluster-client-ip',
        'fastly-client-ip',
        'x-host',
        'x-original-host',
        'client-ip',
        'x-originating-ip',
        'x-remote-addr',
        'x-forwarded',
        'x_real_ip',
        'forwarded-for',
        'via',
        'x-envoy-external-address',
        'wl-proxy-client-ip',
        'x-original-forwarded-for',
        'x-remote-ip',
        'x-proxyuser-ip',
        'x-azure-clientip',
        'x-appengine-user-ip',
        'cf-connecting-ip',
        // keyway's own, what a browser says of the page that sent it, and a slice of an answer that may echo the credential.
        'keyway-audit-event-id',
        'origin',
        'referer',
        'range',
        'if-range',
      ];
      for (const name of ['cookie', 'dpop', 'x-forwarded-for', 'x-forwarded-host', 'forwarded', ...claimsOfClientOrHost])
        expect(call!.headers).not.toHaveProperty(name);
      expect(JSON.stringify(call!.headers)).not.toContain(token);
      expect(call!.headers['host']).toBe(new URL(runtime.upstreamBase()).host);

      // The decision record, then the outcome record naming it.
      const outcome = (await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'))) ?? undefined;
      expect(outcome?.proxy).toMatchObject({ upstream: 'vendor', method: 'POST', path: '/repos/acme/api/issues/7/comments', status: 200 });
      const decision = await broker.auditEvent(outcome!.proxy!.decision_id!);
      expect(decision).toMatchObject({ decision: 'granted', reason: 'granted', subject: 'repo:acme/api:environment:production' });
      expect(decision?.proxy).toMatchObject({ rule: 'POST /repos/{repository}/issues/*/comments', path: '/repos/acme/api/issues/7/comments', query_bytes: 10 });
      expect(outcome).toMatchObject({ decision: 'granted', reason: 'proxy_completed', subject: 'repo:acme/api:environment:production' });
      expect(outcome).not.toHaveProperty('policy');
      expect(outcome?.proxy?.request_bytes).toBe(16);
      expect(outcome?.proxy?.response_bytes).toBe(11);
      // The line follows the outcome record's append, which a reader of the audit log may see first.
      await vi.waitFor(() => {
        const line = logLines.map((text) => JSON.parse(text) as Record<string, unknown>).find((entry) => entry['request_id'] === outcome?.request.id);
        expect(line).toMatchObject({ message: 'proxy request', upstream: 'vendor', reason: 'proxy_completed', status: 200 });
      });
    });

    it('sends a static secret in the header its upstream names, and never the caller’s Authorization, nor its own value of that header, beside it', async () => {
      const token = await job({ repository: 'acme/headed' });
      const response = await send('/proxy/headed/x/headed', { headers: { 'x-api-key': 'callers-own-key' } }, token);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      const [call, ...more] = await callsTo('/x/headed');
      expect(more).toEqual([]);
      expect(call!.headers['x-api-key']).toBe(STATIC_SECRET);
      expect(call!.headers).not.toHaveProperty('authorization');
      expect(JSON.stringify(call!.headers)).not.toContain(token);
    });

    it('forwards the path it decided on, written as keyway writes it, not as the caller spelt it', async () => {
      const response = await send('/proxy/headed/x/refs/heads%3Amain', {}, await job({ repository: 'acme/headed' }));
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      expect((await callsTo('/x/refs/')).map((call) => call.url)).toEqual([`/t/${tenant}/x/refs/heads:main`]);
    });

    it('mints a keyway JWT per request for a keyway-jwt upstream: its audience, the caller as subject, the broker’s signature, redacted from what the upstream echoes', async () => {
      const token = await job({ repository: 'acme/jwt' });
      const response = await send('/proxy/jwt/x/echo-credential', {}, token);
      expect(response.status).toBe(200);
      // The minted JWT is the credential here: an upstream that echoes it gives the caller none of it.
      expect(response.headers.get('x-echo')).toBeNull();
      expect(await response.json()).toEqual({ credential: 'Bearer [redacted]' });
      const [call] = await callsTo('/x/echo-credential').then((calls) => calls.filter((each) => each.headers['authorization'] !== `Bearer ${STATIC_SECRET}`));
      const minted = String(call!.headers['authorization']).replace(/^Bearer /, '');
      expect(minted).not.toBe(token);
      const jwks = createLocalJWKSet((await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet);
      const { payload } = await jwtVerify(minted, jwks, { issuer: broker.issuer, audience: 'https://svc.example', typ: 'at+jwt' });
      expect(payload).toMatchObject({ sub: `${issuer.url}#repo:acme/api:environment:production`, client_id: 'proxy/jwt' });
      expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
      // The outcome record names the JWT by its jti, so the upstream's log joins keyway's; never the JWT itself.
      const outcome = await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'));
      expect(outcome?.proxy?.credential).toEqual({ jti: payload.jti });
      expect(JSON.stringify(outcome)).not.toContain(minted);
    });

    it('takes a keyway access token for {issuer}/proxy/{upstream}, decided by policies that name the broker as issuer', async () => {
      const exchanged = await postToken(broker, exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }));
      expect(exchanged.status).toBe(200);
      const access = exchanged.body['access_token'] as string;
      const response = await send('/proxy/keyed/x/ok', {}, access);
      expect(response.status).toBe(200);
      expect(response.headers.get('keyway-error')).toBeNull();
      const decision = await broker.auditEvent(response.headers.get('keyway-audit-event-id')!);
      expect(decision).toMatchObject({ issuer: broker.issuer, policy: { granted_by: 'proxy/keyed' } });
      // Another upstream's audience does not pass for this one.
      await expectKeywayRefusal(await send('/proxy/vendor/x/ok', {}, access), 401, 'invalid_token', 'proxy_unauthenticated');
    });

    it('takes a delegated keyway token: match_actor holds the actor its act names, and the upstream JWT and the records name that actor', async () => {
      const actorOf = (repository: string) => ({ iss: issuer.url, sub: `repo:${repository}:ref:refs/heads/main` });
      const delegated = async (orchestrator: string, upstream: string): Promise<string> => {
        const actor = await job({ repository: orchestrator, sub: actorOf(orchestrator).sub });
        const form = exchangeForm(await job({ repository: 'acme/act' }), {
          audience: `${broker.issuer}/proxy/${upstream}`,
          actor_token: actor,
          actor_token_type: ID_TOKEN,
        });
        const exchanged = await postToken(broker, form);
        expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
        const access = exchanged.body['access_token'] as string;
        expect(decodeJwt(access)['act']).toEqual(actorOf(orchestrator));
        return access;
      };
      const jwks = createLocalJWKSet((await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet);
      /** Calls `path` with the token; the JWT the upstream received, verified, and the decision and outcome records. */
      const proxied = async (upstream: string, path: string, token: string, audience: string) => {
        const response = await send(`/proxy/${upstream}${path}`, {}, token);
        expect(response.status, response.headers.get('keyway-error') ?? '').toBe(200);
        await response.arrayBuffer();
        const [call] = await callsTo(path);
        const minted = String(call!.headers['authorization']).replace(/^Bearer /, '');
        const { payload } = await jwtVerify(minted, jwks, { issuer: broker.issuer, audience, typ: 'at+jwt' });
        const decision = await broker.auditEvent(response.headers.get('keyway-audit-event-id')!);
        const outcome = await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'));
        return { payload, decision, outcome };
      };

      const acted = await proxied('acted', '/x/acted', await delegated('acme/orchestrator', 'acted'), 'https://acted.example');
      expect(acted.payload['act']).toEqual(actorOf('acme/orchestrator'));
      expect(acted.payload['client_id']).toBe('proxy/acted');
      const named = { issuer: issuer.url, subject: actorOf('acme/orchestrator').sub };
      expect(acted.decision).toMatchObject({ decision: 'granted', actor: named, policy: { granted_by: 'proxy/acted' } });
      expect(acted.outcome).toMatchObject({ reason: 'proxy_completed', actor: named });

      // Another actor the token's own policy let act is not the one this policy's match_actor names.
      const other = await delegated('acme/conductor', 'acted');
      const refused = await expectKeywayRefusal(await send('/proxy/acted/x/acted-other', {}, other), 400, 'invalid_request', 'no_policy_matched');
      expect(refused.actor).toEqual({ issuer: issuer.url, subject: actorOf('acme/conductor').sub });
      expect(await callsTo('/x/acted-other')).toEqual([]);

      // A policy without match_actor decides on the token's own claims, and the upstream still learns who acts.
      const plain = await proxied('delegated', '/x/delegated', await delegated('acme/conductor', 'delegated'), 'https://delegated.example');
      expect(plain.payload['act']).toEqual(actorOf('acme/conductor'));
      expect(plain.decision).toMatchObject({
        actor: { issuer: issuer.url, subject: actorOf('acme/conductor').sub },
        policy: { granted_by: 'proxy/delegated' },
      });
    });

    /** A keyway access token for the `keyed` upstream, bound to a new DPoP key. */
    async function boundKeyedToken(): Promise<{ key: DpopKey; access: string }> {
      const key = await DpopKey.generate();
      const exchanged = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`) },
      });
      const body = (await exchanged.json()) as Record<string, unknown>;
      expect(exchanged.status, JSON.stringify(body)).toBe(200);
      expect(body['token_type']).toBe('DPoP');
      return { key, access: body['access_token'] as string };
    }

    it('takes a DPoP-bound keyway token with a proof of its key, and refuses it as Bearer, with a proof for another path or used before', async () => {
      const { key, access } = await boundKeyedToken();
      const ath = await athOf(access);
      const proof = await key.proof('GET', `${broker.issuer}/proxy/keyed/x/bound`, { ath });
      const bound = { authorization: `DPoP ${access}` };
      const answered = await broker.request('/proxy/keyed/x/bound', { headers: { ...bound, dpop: proof } });
      expect(answered.status).toBe(200);
      await answered.arrayBuffer();
      expect(await callsTo('/x/bound')).toHaveLength(1);

      const refusals = [
        await broker.request('/proxy/keyed/x/bound', { headers: { authorization: `Bearer ${access}` } }),
        await broker.request('/proxy/keyed/x/bound', { headers: { ...bound, dpop: await key.proof('GET', `${broker.issuer}/proxy/keyed/x/other`, { ath }) } }),
        await broker.request('/proxy/keyed/x/bound', { headers: { ...bound, dpop: proof } }),
        // The DPoP scheme is for keyway's own tokens: a CI token under it is not taken as a CI token.
        await broker.request('/proxy/vendor/x/bound', { headers: { authorization: `DPoP ${await job()}`, dpop: proof } }),
      ];
      for (const refused of refusals) await expectKeywayRefusal(refused, 401, 'invalid_token', 'proxy_unauthenticated');
      expect(await callsTo('/x/bound')).toHaveLength(1);
    });

    it('holds grant.require_dpop at /proxy: a CI token or an unbound keyway token is refused, a DPoP-bound one with its proof is taken', async () => {
      const ci = await send('/proxy/vendor/x/needs-proof', {}, await job({ repository: 'acme/dpop' }));
      const refused = await expectKeywayRefusal(ci, 400, 'invalid_dpop_proof', 'dpop_required');
      expect(refused.policy).toMatchObject({ granted_by: 'proxy/ci-dpop' });
      const exchanged = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/short` }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      const unbound = ((await exchanged.json()) as Record<string, unknown>)['access_token'] as string;
      await expectKeywayRefusal(await send('/proxy/short/x/needs-proof', {}, unbound), 400, 'invalid_dpop_proof', 'dpop_required');
      expect(await callsTo('/x/needs-proof')).toEqual([]);

      const key = await DpopKey.generate();
      const bound = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/short` }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`) },
      });
      const access = ((await bound.json()) as Record<string, unknown>)['access_token'] as string;
      const proof = await key.proof('GET', `${broker.issuer}/proxy/short/x/needs-proof`, { ath: await athOf(access) });
      const taken = await broker.request('/proxy/short/x/needs-proof', { headers: { authorization: `DPoP ${access}`, dpop: proof } });
      expect(taken.status).toBe(200);
      await taken.arrayBuffer();
      expect(await callsTo('/x/needs-proof')).toHaveLength(1);
    });

    it('answers 503 with a record, nothing upstream, when the proof of a DPoP-bound keyway token cannot be claimed (the single-use store down)', async () => {
      const { key, access } = await boundKeyedToken();
      const proof = await key.proof('GET', `${broker.issuer}/proxy/keyed/x/unclaimable`, { ath: await athOf(access) });
      await broker.setReplayGuardDown(true);
      let event: AuditEvent;
      try {
        const answered = await broker.request('/proxy/keyed/x/unclaimable', { headers: { authorization: `DPoP ${access}`, dpop: proof } });
        event = await expectKeywayRefusal(answered, 503, 'temporarily_unavailable', 'replay_guard_unavailable');
      } finally {
        await broker.setReplayGuardDown(false);
      }
      expect(event.detail).toContain('whether the DPoP proof was used before could not be checked');
      expect(await callsTo('/x/unclaimable')).toHaveLength(0);
      // Never claimed, the proof is good once the store is back.
      expect((await broker.request('/proxy/keyed/x/unclaimable', { headers: { authorization: `DPoP ${access}`, dpop: proof } })).status).toBe(200);
    });

    it('refuses a revoked keyway access token: 401 invalid_token, a proxy refusal on record, nothing upstream', async () => {
      const exchanged = await postToken(broker, exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }));
      const access = exchanged.body['access_token'] as string;
      expect((await send('/proxy/keyed/x/before-revocation', {}, access)).status).toBe(200);
      const revoked = await broker.request('/revoke', {
        method: 'POST',
        body: new URLSearchParams({ token: access, token_type_hint: 'access_token' }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(revoked.status).toBe(200);
      const before = (await upstreamCalls()).length;
      const event = await expectKeywayRefusal(await send('/proxy/keyed/x/after-revocation', {}, access), 401, 'invalid_token', 'proxy_unauthenticated');
      expect(event.detail).toContain('revoked');
      expect(event.proxy).toMatchObject({ upstream: 'keyed', path: '/x/after-revocation' });
      expect((await upstreamCalls()).length).toBe(before);
    });

    it('takes a CI token, a keyway token and a DPoP-bound one under their auth-scheme in any case, after one or more spaces (RFC 9110 §11.1)', async () => {
      const keyed = (await postToken(broker, exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }))).body[
        'access_token'
      ] as string;
      const calls: [string, string, Record<string, string>][] = [
        ['/proxy/vendor/x/any-case-ci', `bearer ${await job()}`, {}],
        ['/proxy/vendor/x/any-case-ci', `BEARER  ${await job()}`, {}],
        ['/proxy/keyed/x/any-case-keyed', `bEaReR ${keyed}`, {}],
      ];
      for (const written of ['dpop', 'DPOP']) {
        const { key, access } = await boundKeyedToken();
        const proof = await key.proof('GET', `${broker.issuer}/proxy/keyed/x/any-case-bound`, { ath: await athOf(access) });
        calls.push(['/proxy/keyed/x/any-case-bound', `${written} ${access}`, { dpop: proof }]);
      }
      for (const [path, authorization, headers] of calls) {
        const response = await broker.request(path, { headers: { authorization, ...headers } });
        expect({ authorization: authorization.split(' ')[0], status: response.status, error: response.headers.get('keyway-error') }).toEqual({
          authorization: authorization.split(' ')[0],
          status: 200,
          error: null,
        });
        await response.arrayBuffer();
      }
      expect(await callsTo('/x/any-case-ci')).toHaveLength(2);
      expect(await callsTo('/x/any-case-keyed')).toHaveLength(1);
      expect(await callsTo('/x/any-case-bound')).toHaveLength(2);
    });

    it('refuses a revoked keyway token, bound or not, however its scheme is spelt or spaced: 401 and a record each, nothing upstream', async () => {
      const plain = (await postToken(broker, exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }))).body[
        'access_token'
      ] as string;
      const { key, access: bound } = await boundKeyedToken();
      // Each revoked by its holder: the bound one with a proof of its key.
      for (const [token, proof] of [
        [plain, undefined],
        [bound, await key.proof('POST', `${broker.issuer}/revoke`, { ath: await athOf(bound) })],
      ] as const) {
        const revoked = await broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) },
        });
        expect(revoked.status).toBe(200);
      }
      const written = (scheme: string) => [scheme, scheme.toLowerCase(), scheme.toUpperCase(), `${scheme.toLowerCase()}  `, `  ${scheme}`];
      for (const scheme of ['Bearer', 'DPoP']) {
        for (const prefix of written(scheme)) {
          const token = scheme === 'DPoP' ? bound : plain;
          const proof: Record<string, string> =
            scheme === 'DPoP' ? { dpop: await key.proof('GET', `${broker.issuer}/proxy/keyed/x/revoked-any-case`, { ath: await athOf(bound) }) } : {};
          const response = await broker.request('/proxy/keyed/x/revoked-any-case', { headers: { authorization: `${prefix} ${token}  `, ...proof } });
          const event = await expectKeywayRefusal(response, 401, 'invalid_token', 'proxy_unauthenticated');
          expect({ prefix, detail: event.detail }).toEqual({ prefix, detail: expect.stringContaining('revoked') });
        }
      }
      expect(await callsTo('/x/revoked-any-case')).toEqual([]);
    });

    // Node only: its revocation list is a table the harness can take away; on Workers it is the replay shards' storage.
    it.skipIf(runtime.sendRaw === undefined)(
      'refuses a keyway access token while the revocation list cannot be read: 503, a record, nothing upstream',
      async () => {
        const exchanged = await postToken(broker, exchangeForm(await job({ repository: 'acme/jwt' }), { audience: `${broker.issuer}/proxy/keyed` }));
        const access = exchanged.body['access_token'] as string;
        const before = (await upstreamCalls()).length;
        await broker.tamper('ALTER TABLE replay_claims RENAME TO replay_claims_away', []);
        let response: Response;
        try {
          response = await send('/proxy/keyed/x/revocation-unknown', {}, access);
        } finally {
          await broker.tamper('ALTER TABLE replay_claims_away RENAME TO replay_claims', []);
        }
        await expectKeywayRefusal(response, 503, 'temporarily_unavailable', 'proxy_revocation_unavailable');
        expect((await upstreamCalls()).length).toBe(before);
      },
    );

    it('makes no call when the decision cannot be recorded: 503, Keyway-Error, nothing upstream', async () => {
      const before = (await upstreamCalls()).length;
      await broker.tamper("CREATE TRIGGER proxy_audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'down for the test'); END", []);
      let response: Response;
      try {
        response = await send('/proxy/vendor/x/ok');
      } finally {
        // Named on audit_events so the Workers harness runs it on every audit shard, as it ran the CREATE.
        await broker.tamper('DROP TRIGGER proxy_audit_down /* audit_events */', []);
      }
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status).toBe(503);
      expect(response.headers.get('keyway-error')).toBe('audit_unavailable');
      expect(body).toMatchObject({ error: 'temporarily_unavailable' });
      expect(body).not.toHaveProperty('audit_event_id');
      expect((await upstreamCalls()).length).toBe(before);
      expect(errorsLogged(response.headers.get('x-request-id'))).toEqual(['audit append failed; the proxied request is not made']);
    });

    it("passes the upstream's answer on when its outcome record cannot be appended, and the log line says the request was made", async () => {
      const before = (await upstreamCalls()).length;
      await broker.tamper(
        "CREATE TRIGGER proxy_outcome_down BEFORE INSERT ON audit_events WHEN NEW.reason = 'proxy_completed' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
        [],
      );
      try {
        const response = await send('/proxy/vendor/x/ok');
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        expect((await upstreamCalls()).length).toBe(before + 1);
        const decision = await broker.auditEvent(response.headers.get('keyway-audit-event-id') ?? '');
        // The outcome is appended once the answer has streamed: the trigger stays until it was tried.
        await vi.waitFor(() =>
          expect(errorsLogged(decision?.request.id ?? '')).toEqual([
            "audit append failed; the proxied request's outcome is not recorded (its decision record is)",
          ]),
        );
      } finally {
        await broker.tamper('DROP TRIGGER proxy_outcome_down /* audit_events */', []);
      }
    });

    it('strips hop-by-hop headers both ways, the upstream’s cookies, what it would say of keyway’s own origin or to the server or cache in front of it, and a Keyway-Error it tries to forge', async () => {
      // Connection names its headers in any case, in a list with white space after its commas.
      const headers = {
        authorization: `Bearer ${await job()}`,
        connection: 'X-Named-Hop, x-second-hop',
        'x-named-hop': 'secret',
        'x-second-hop': 'secret',
        'proxy-authorization': 'Basic eA==',
        te: 'trailers',
        upgrade: 'h2c',
        'http2-settings': 'AAMAAABkAAQAoAAAAAIAAAAA',
      };
      // fetch refuses to send a Connection header; the raw request line can (Node), and workerd's own Request takes it.
      const response =
        runtime.sendRaw !== undefined
          ? await runtime.sendRaw(broker, '/proxy/vendor/x/hop', headers)
          : await broker.request('/proxy/vendor/x/hop', { headers });
      expect(response.status).toBe(200);
      for (const name of [
        'keyway-error',
        'x-named-hop',
        'x-second-hop',
        'trailer',
        'proxy-authenticate',
        'set-cookie',
        'set-cookie2',
        'alt-svc',
        'strict-transport-security',
        'clear-site-data',
        'nel',
        'report-to',
        'x-accel-redirect',
        'x-accel-expires',
        'x-sendfile',
        'x-sendfile2',
        'x-lighttpd-send-file',
        'x-envoy-immediate-health-check-fail',
        'x-envoy-degraded',
        'surrogate-control',
        'cdn-cache-control',
        'cloudflare-cdn-cache-control',
        'vercel-cdn-cache-control',
        'netlify-cdn-cache-control',
        'edge-control',
      ])
        expect(response.headers.get(name)).toBeNull();
      // For the caller's own cache alone: a shared cache in front of keyway would hand it to whoever asks that URL.
      expect(response.headers.get('cache-control')).toBe('private, max-age=86400, must-revalidate');
      const uncached = await send('/proxy/vendor/x/ok');
      expect(uncached.status).toBe(200);
      expect(uncached.headers.get('cache-control')).toBe('private');
      await uncached.arrayBuffer();
      // keyway's own server may keep its connection alive; the upstream's Keep-Alive is never passed on.
      expect(response.headers.get('keep-alive')).not.toBe('timeout=77, max=3');
      expect(response.headers.get('x-upstream-own')).toBe('kept');
      // Connection itself is hop-by-hop: each side's own, never the other's list.
      expect(response.headers.get('connection') ?? '').not.toMatch(/hop/i);
      const [call] = await callsTo('/x/hop');
      expect(String(call!.headers['connection'] ?? '')).not.toMatch(/hop/i);
      for (const name of ['x-named-hop', 'x-second-hop', 'proxy-authorization', 'te', 'upgrade', 'http2-settings'])
        expect(call!.headers).not.toHaveProperty(name);
    });

    it.each([422, 599])('passes upstream errors back faithfully, without Keyway-Error: %i', async (status) => {
      const response = await send(`/proxy/vendor/x/status/${status}`);
      expect(response.status).toBe(status);
      expect(response.headers.get('keyway-error')).toBeNull();
      expect(response.headers.get('x-upstream-own')).toBe('kept');
      expect(await response.json()).toEqual({
        message: 'from the upstream',
        documentation_url: 'https://upstream.example/docs',
        error_description: UPSTREAM_WORDS,
      });
    });

    it('answers an upstream status outside 200…599 (HTTP/1.1 takes any three digits) with no 500', async () => {
      const response = await send('/proxy/vendor/x/status/999');
      await expectKeywayRefusal(response, 502, 'temporarily_unavailable', 'proxy_upstream_unavailable');
    });

    it('never hands the upstream credential back, in a header or a body that echoes it, nor in a log line', async () => {
      const response = await send('/proxy/vendor/x/echo-credential');
      expect(response.status).toBe(200);
      expect(response.statusText).not.toContain(STATIC_SECRET);
      expect(response.headers.get('x-echo')).toBeNull();
      for (const [name, value] of response.headers) expect(`${name}: ${value}`).not.toContain(STATIC_SECRET);
      expect(await response.json()).toEqual({ credential: 'Bearer [redacted]' });
      // Nor in a redirect to the upstream itself that carries it (a signed URL): keyway's rewritten Location is checked too.
      const redirected = await send('/proxy/vendor/x/redirect-credential', { redirect: 'manual' });
      for (const [, value] of redirected.headers) expect(decodeURIComponent(value)).not.toContain(STATIC_SECRET);
      await expectKeywayRefusal(redirected, 502, 'temporarily_unavailable', 'proxy_redirect_refused');
      expect(logLines.join('\n')).not.toContain(STATIC_SECRET);
    });

    it('passes an answer in a coding fetch decodes (gzip, br) decoded and redacted, or in none (identity), and refuses one in any other, or in a transfer coding besides chunked, which fetch would hand over still encoded', async () => {
      for (const coding of ['gzip', 'br', 'identity']) {
        const response = await send(`/proxy/vendor/x/echo-coded/${coding}`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-encoding')).toBeNull();
        // The upstream's Content-Length counts the bytes before decoding and redaction, which are not the bytes passed on.
        expect(response.headers.get('content-length')).toBeNull();
        expect(await response.json()).toEqual({ credential: 'Bearer [redacted]' });
      }
      // Decoded by neither runtime, or by undici (Node) and not by workerd: refused on both, as an upstream failure.
      for (const coding of ['gzip-identity', 'deflate', 'x-gzip', 'upper-gzip']) {
        const response = await send(`/proxy/vendor/x/echo-coded/${coding}`);
        const event = await expectKeywayRefusal(response, 502, 'temporarily_unavailable', 'proxy_upstream_unavailable');
        expect(event.proxy).toMatchObject({ status: 200, path: `/x/echo-coded/${coding}` });
      }
      // A transfer coding besides chunked: fetch takes off the chunking only and hands the rest over still encoded, unlabelled.
      const transferCoded = await send('/proxy/vendor/x/echo-transfer-coded');
      const event = await expectKeywayRefusal(transferCoded, 502, 'temporarily_unavailable', 'proxy_upstream_unavailable');
      expect(event.proxy).toMatchObject({ status: 200, path: '/x/echo-transfer-coded' });
      // keyway asks for the codings it passes, whatever the caller asked for.
      const [call] = await callsTo('/x/echo-coded/gzip');
      expect(call!.headers['accept-encoding']).toBe('gzip, br');
    });

    it('refuses a redirect to another host (502, Keyway-Error) and rewrites one to the upstream itself to come back through keyway', async () => {
      const away = await send('/proxy/vendor/x/redirect-away');
      const event = await expectKeywayRefusal(away, 502, 'temporarily_unavailable', 'proxy_redirect_refused');
      expect(event.proxy).toMatchObject({ status: 302, path: '/x/redirect-away' });
      const home = await send('/proxy/vendor/x/redirect-home', { redirect: 'manual' });
      expect(home.status).toBe(302);
      expect(home.headers.get('location')).toBe(`${broker.issuer}/proxy/vendor/landing?x=1`);
      // A relative Location is relative to the URL that was called.
      const relative = await send('/proxy/vendor/x/redirect-relative', { redirect: 'manual' });
      expect(relative.status).toBe(302);
      expect(relative.headers.get('location')).toBe(`${broker.issuer}/proxy/vendor/x/landing?x=2`);
      // The same host, outside the upstream's base path: not the upstream, so refused too.
      const sideways = await send('/proxy/vendor/x/redirect-sideways', { redirect: 'manual' });
      await expectKeywayRefusal(sideways, 502, 'temporarily_unavailable', 'proxy_redirect_refused');
    });

    it('rewrites the Location of a 201 on the upstream itself to come back through keyway, as a page link, and leaves one elsewhere as it is', async () => {
      const home = await send('/proxy/vendor/x/created-home');
      expect(home.status).toBe(201);
      expect(home.headers.get('location')).toBe(`${broker.issuer}/proxy/vendor/items/7`);
      const away = await send('/proxy/vendor/x/created-away');
      expect(away.status).toBe(201);
      expect(away.headers.get('location')).toBe('https://elsewhere.example/items/7');
    });

    it('rewrites a Content-Location on the upstream itself to come back through keyway, as a Location, and leaves one elsewhere as it is', async () => {
      const home = await send('/proxy/vendor/x/created-home');
      expect(home.status).toBe(201);
      expect(home.headers.get('content-location')).toBe(`${broker.issuer}/proxy/vendor/items/7`);
      const away = await send('/proxy/vendor/x/created-away');
      expect(away.status).toBe(201);
      expect(away.headers.get('content-location')).toBe('https://elsewhere.example/items/7');
    });

    it('drops a 201 Location or Content-Location that the rewrite would make carry the credential', async () => {
      // Split by a tab, which the URL parser drops: the upstream's own header does not hold the credential, the rewrite would.
      const split = await send('/proxy/vendor/x/created-credential');
      expect(split.status).toBe(201);
      expect(split.headers.has('location')).toBe(false);
      expect(split.headers.has('content-location')).toBe(false);
      for (const [, value] of split.headers) expect(value).not.toContain(STATIC_SECRET);
    });

    it('rewrites a Link to a page of the upstream itself to come back through keyway, and leaves a link elsewhere as it is', async () => {
      const paged = await send('/proxy/vendor/x/paged');
      expect(paged.status).toBe(200);
      await paged.arrayBuffer();
      const [next, last, other, prev, more] = (paged.headers.get('link') ?? '').split(', ');
      expect(next).toBe(`<${broker.issuer}/proxy/vendor/items?page=2>; rel="next"`);
      expect(last).toBe('<https://elsewhere.example/items?page=9>; rel="last"');
      expect(other).toMatch(/^<http:\/\/127\.0\.0\.1:\d+\/t\/someone-else\/items\?page=2>; rel="other"$/);
      // Relative references resolve against the URL that was called, as the caller's client would have resolved them.
      expect(prev).toBe(`<${broker.issuer}/proxy/vendor/x/paged?page=3>; rel="prev"`);
      expect(more).toBe(`<${broker.issuer}/proxy/vendor/x/more>; rel="more"`);

      // A Link that the rewrite would make carry the credential (split by a tab, which the URL parser drops) is dropped.
      const split = await send('/proxy/vendor/x/paged-credential');
      expect(split.status).toBe(200);
      await split.arrayBuffer();
      expect(split.headers.has('link')).toBe(false);
      for (const [, value] of split.headers) expect(value).not.toContain(STATIC_SECRET);
    });

    it('times a slow upstream out: 504 with Keyway-Error, within the limit, and an audit record', async () => {
      const started = Date.now();
      const response = await send('/proxy/short/slow', {}, await job({ repository: 'acme/short' }));
      const event = await expectKeywayRefusal(response, 504, 'temporarily_unavailable', 'proxy_upstream_timeout');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(event.proxy?.decision_id).toBeTypeOf('string');
    });

    it('ends an answer that stalls at the deadline too: the body errors, the outcome record says timeout', async () => {
      const started = Date.now();
      const response = await send('/proxy/short/trickle', {}, await job({ repository: 'acme/short' }));
      expect(response.status).toBe(200);
      await expect(response.arrayBuffer()).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(5000);
      const outcome = await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'));
      expect(outcome).toMatchObject({ decision: 'error', reason: 'proxy_upstream_timeout' });
    });

    it('records a caller that stops reading as such (the upstream answered), never as the upstream failing', async () => {
      const gate = crypto.randomUUID();
      const response = await send(`/proxy/vendor/x/gate/${gate}`);
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      expect((await reader.read()).value?.byteLength).toBeGreaterThan(0);
      await reader.cancel();
      try {
        const outcome = await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'));
        expect(outcome).toMatchObject({ decision: 'granted', reason: 'proxy_completed', proxy: { status: 200 } });
        expect(outcome?.detail).toMatch(/caller stopped reading/);
        expect(outcome?.proxy?.response_bytes).toBeGreaterThan(0);
      } finally {
        await openFakeUpstreamGate(runtime.upstreamBase(), gate);
      }
    });

    it('streams a large answer within the cap as it arrives, never buffering it whole', async () => {
      const gate = crypto.randomUUID();
      const response = await send(`/proxy/vendor/x/gate/${gate}`);
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      // The upstream has sent one chunk and waits: keyway passes it on before the rest exists.
      const first = await reader.read();
      expect(first.value?.byteLength).toBeGreaterThan(0);
      await openFakeUpstreamGate(runtime.upstreamBase(), gate);
      let bytes = first.value!.byteLength;
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) bytes += chunk.value.byteLength;
      expect(bytes).toBe(64 * 1024 + 1024 * 1024);

      const large = await send('/proxy/vendor/x/big/6291456');
      expect((await large.arrayBuffer()).byteLength).toBe(6 * 1024 * 1024);
    });

    it('refuses an answer whose Content-Length announces more than the cap: 502, nothing of it passed on', async () => {
      const response = await send('/proxy/short/announced/3145728', {}, await job({ repository: 'acme/short' }));
      const event = await expectKeywayRefusal(response, 502, 'temporarily_unavailable', 'proxy_response_too_large');
      expect(event.proxy).toMatchObject({ status: 200 });
    });

    it('cuts an answer that passes the cap and records why', async () => {
      const response = await send('/proxy/short/big/3145728', {}, await job({ repository: 'acme/short' }));
      expect(response.status).toBe(200);
      await expect(response.arrayBuffer()).rejects.toThrow();
      const outcome = await waitForOutcomeOf(broker, response.headers.get('keyway-audit-event-id'));
      expect(outcome).toMatchObject({ decision: 'error', reason: 'proxy_response_too_large' });
    });

    it('holds each caller to the upstream’s rate: 429 with Retry-After and a record, nothing upstream', async () => {
      const token = await job({ repository: 'acme/limited' });
      const first = await send('/proxy/limited/x/ok', {}, token);
      expect(first.status).toBe(200);
      await first.arrayBuffer();
      const before = (await upstreamCalls()).length;
      const second = await send('/proxy/limited/x/ok', {}, token);
      expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
      await expectKeywayRefusal(second, 429, 'temporarily_unavailable', 'rate_limited');
      expect((await upstreamCalls()).length).toBe(before);
    });

    it("keys a caller's rate on its account too: another account's job signed the same customised sub spends none of it", async () => {
      // GitHub lets each repository choose its sub's claims (include_claim_keys): with environment alone, every account's
      // environment of that name has this very sub, signed by GitHub.
      const sub = `environment:${crypto.randomUUID()}`;
      const partner = await job({ sub, repository: 'partner/limited', repository_id: '4041', repository_owner: 'partner', repository_owner_id: '4040' });
      const theirs = await send('/proxy/limited/x/ok', {}, partner);
      expect(theirs.status).toBe(200);
      await theirs.arrayBuffer();
      const own = await send('/proxy/limited/x/ok', {}, await job({ sub, repository: 'acme/limited' }));
      expect(own.status).toBe(200);
      await own.arrayBuffer();
    });

    it('limits a caller no policy allows at a name at the default rate, whatever the name: the upstream’s own rate tells nothing', async () => {
      // acme/api is no caller of limited (1 a minute): refused by the policies, twice, as at a name no one declared.
      const token = await job();
      for (const name of ['limited', `nowhere-${crypto.randomUUID().slice(0, 8)}`]) {
        for (let attempt = 0; attempt < 2; attempt += 1) {
          await expectKeywayRefusal(await send(`/proxy/${name}/x/ok`, {}, token), 403, 'access_denied', 'proxy_not_allowed');
        }
      }
    });

    it('compares a path segment from a claim as the issuer compares that claim: a branch spelt in another case reaches no other branch’s path', async () => {
      // refs/heads/MAIN is another branch than main, which anyone who can push may create without main's protection.
      const other = await job({ ref: 'refs/heads/MAIN' });
      const before = (await upstreamCalls()).length;
      await expectKeywayRefusal(await send('/proxy/vendor/deploy/refs/heads/main', { method: 'PUT' }, other), 403, 'access_denied', 'proxy_not_allowed');
      expect((await upstreamCalls()).length).toBe(before);
      const own = await send('/proxy/vendor/deploy/refs/heads/MAIN', { method: 'PUT' }, other);
      expect(own.status).toBe(200);
      await own.arrayBuffer();
      expect((await callsTo('/deploy/refs/heads/MAIN')).at(-1)?.method).toBe('PUT');
      // GitHub's owner and repository names compare without case, in the path as in match.
      const named = await send('/proxy/vendor/repos/ACME/Api/issues');
      expect(named.status).toBe(200);
      await named.arrayBuffer();
      expect(await callsTo('/repos/ACME/Api/issues')).toHaveLength(1);
    });

    it('forwards a body the caller streamed in chunks (no Content-Length) whole, framed by its own length rather than the caller’s chunking', async () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of ['streamed-', 'body']) controller.enqueue(new TextEncoder().encode(chunk));
          controller.close();
        },
      });
      const response = await send('/proxy/vendor/x/upload', { method: 'PUT', body, duplex: 'half' } as RequestInit);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      const [call] = (await callsTo('/x/upload')).filter((each) => each.body === 'streamed-body');
      expect(call?.headers['transfer-encoding']).toBeUndefined();
      expect(call?.headers['content-length']).toBe('13');
    });

    it('takes a _method from a POST body only, as frameworks do: a PUT body that holds one is forwarded as sent', async () => {
      const response = await send('/proxy/vendor/x/upload', { method: 'PUT', body: new TextEncoder().encode('_method=DELETE') });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      const [call] = (await callsTo('/x/upload')).filter((each) => each.body === '_method=DELETE');
      expect(call?.method).toBe('PUT');
    });

    describe('a sudo parameter (GitLab from the query or any body, Gitea and Forgejo from the query or a form: an administrator’s token acts as the user named)', () => {
      const bytes = (text: string) => new TextEncoder().encode(text);
      const QUERY = "a sudo query parameter is refused: the upstream acts as keyway's credential, never as whom a request names";
      const BODY = "a sudo field in the request body is refused: the upstream acts as keyway's credential, never as whom a request names";
      it.each([
        ['in the query', '/proxy/vendor/x/y?sudo=root', {}, QUERY],
        ['in the query, as sudo[] (Rack reads params[:sudo], an array)', '/proxy/vendor/x/y?sudo[]=root', {}, QUERY],
        ['in the query, after a ;', '/proxy/vendor/x/y?a=1;sudo=root', {}, QUERY],
        ['in the query, percent-encoded', '/proxy/vendor/x/y?%73udo=root', {}, QUERY],
        ['in the query of a PUT', '/proxy/vendor/x/upload?sudo=root', { method: 'PUT', body: bytes('x') }, QUERY],
        [
          'in a PUT’s form body (Go reads a PUT’s form)',
          '/proxy/vendor/x/upload',
          { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: bytes('title=x&sudo=root') },
          BODY,
        ],
        [
          'in a POST’s JSON body, a top-level key',
          '/proxy/vendor/repos/acme/api/issues/7/comments',
          { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes('{"body":"x","sudo":"root"}') },
          BODY,
        ],
        [
          'in a PUT’s JSON body, its key escaped',
          '/proxy/vendor/x/upload',
          { method: 'PUT', headers: { 'content-type': 'application/json' }, body: bytes('{"\\u0073udo":"root"}') },
          BODY,
        ],
        [
          'in a JSON body with comments (Ruby’s json gem, GitLab’s reader, skips them; JSON.parse refuses them)',
          '/proxy/vendor/x/upload',
          { method: 'PUT', headers: { 'content-type': 'application/json' }, body: bytes('{"body":"x", /* a */ "sudo" // b\n : "root"}') },
          BODY,
        ],
        [
          'in a PUT’s multipart body',
          '/proxy/vendor/x/upload',
          {
            method: 'PUT',
            headers: { 'content-type': 'multipart/form-data; boundary=b' },
            body: bytes('--b\r\nContent-Disposition: form-data; name="sudo"\r\n\r\nroot\r\n--b--\r\n'),
          },
          BODY,
        ],
        [
          'behind an escape JSON.parse refuses and the json gem before 2.17 reads (`\\o` as `o`): a JSON body that does not parse',
          '/proxy/vendor/x/upload',
          { method: 'PUT', headers: { 'content-type': 'application/json' }, body: bytes('{"sud\\o":"root"}') },
          'a body whose field names readers would read differently is refused',
        ],
        [
          'in a POST body with no content type (Rack reads it as a form)',
          '/proxy/vendor/repos/acme/api/issues/7/comments',
          { method: 'POST', body: bytes('body=x&sudo=root') },
          BODY,
        ],
      ] as const)('is refused %s: 400, recorded with why, nothing upstream', async (_label, path, init, detail) => {
        const before = (await upstreamCalls()).length;
        const event = await expectKeywayRefusal(await send(path, init as RequestInit), 400, 'invalid_request', 'proxy_header_refused');
        expect(event.detail).toBe(detail);
        expect((await upstreamCalls()).length).toBe(before);
      });

      it('is no other name, nor a nested key, nor a typeless PUT (no reader takes it as a form): each forwarded as sent', async () => {
        const passed = async (path: string, init: RequestInit = {}) => {
          const response = await send(path, init);
          expect(response.status, path).toBe(200);
          await response.arrayBuffer();
        };
        await passed('/proxy/vendor/x/sudo?pseudo=1&sudoers=2&user=sudo');
        expect(await callsTo('/x/sudo?pseudo=1&sudoers=2&user=sudo')).toHaveLength(1);
        const nested = `{"pseudo":1,"user":{"sudo":"root"},"note":"sudo=root /* sudo */"}`;
        await passed('/proxy/vendor/x/upload', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: bytes(nested) });
        await passed('/proxy/vendor/x/upload', { method: 'PUT', body: bytes('sudo=root') });
        const bodies = (await callsTo('/x/upload')).map((call) => call.body);
        expect(bodies).toEqual(expect.arrayContaining([nested, 'sudo=root']));
      });
    });

    describe('what routes a request past its rule, skips the upstream’s checks or moves it to another tenant', () => {
      const ROUTED = "the method and path are the request's own";
      const SKIPS = 'it would have the upstream skip checks it makes on every request';
      const TENANT = 'the upstream acts where the path says, never in the organisation or namespace a header names';
      const QUERY_TENANT = 'the upstream acts where the path says, never in the namespace or partition a query names';
      it.each([
        // CVE-2025-29927: the value Next.js 13 to 15 took for its own recursion guard, which skipped the app's middleware.
        ['x-middleware-subrequest', 'middleware:middleware:middleware:middleware:middleware', SKIPS],
        ['x-middleware-subrequest', 'src/middleware', SKIPS],
        ['x-middleware-rewrite', '/admin/keys', SKIPS],
        ['x-middleware-next', '1', SKIPS],
        ['x_middleware_subrequest', 'middleware', SKIPS],
        ['x-isr', '1', SKIPS],
        ['x-matched-path', '/admin/keys', ROUTED],
        ['x-now-route-matches', 'slug=other-team', ROUTED],
        ['x-invoke-path', '/admin/keys', ROUTED],
        ['x-invoke-query', '%7B%22team%22%3A%22b%22%7D', ROUTED],
        ['x-vercel-original-url', '/admin/keys', ROUTED],
        ['x-vercel-original-path', '/admin/keys', ROUTED],
        // A server action's id runs that action whatever page the path names.
        ['next-action', '7f8e2c1a9b3d4e5f60718293a4b5c6d7e8f90a1b', ROUTED],
        ['x-grafana-org-id', '2', TENANT],
        ['x-consul-namespace', 'team-b', TENANT],
        ['x-consul-partition', 'team-b', TENANT],
        ['x-nomad-namespace', 'team-b', TENANT],
      ] as const)('refuses the header %s: %s, recorded with why, nothing upstream', async (name, value, why) => {
        const before = (await upstreamCalls()).length;
        const event = await expectKeywayRefusal(
          await send('/proxy/vendor/x/y', { headers: { [name]: value } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        );
        expect(event.detail).toBe(`${name} is refused: ${why}`);
        expect((await upstreamCalls()).length).toBe(before);
      });

      // A Next.js form posted without JavaScript names its server action in a field, as `Next-Action` does in a header.
      it.each([
        [
          'a multipart body, $ACTION_ID_<id>',
          'multipart/form-data; boundary=b',
          '--b\r\nContent-Disposition: form-data; name="$ACTION_ID_7f8e2c1a"\r\n\r\n\r\n--b--\r\n',
        ],
        [
          'a multipart body, $ACTION_REF_<n> (an action with bound arguments or state)',
          'multipart/form-data; boundary=b',
          '--b\r\nContent-Disposition: form-data; name="$ACTION_REF_1"\r\n\r\n\r\n--b\r\nContent-Disposition: form-data; name="$ACTION_1:0"\r\n\r\n{"id":"7f8e2c1a","bound":"$@1"}\r\n--b--\r\n',
        ],
        ['a form body', 'application/x-www-form-urlencoded', 'body=x&%24ACTION_ID_7f8e2c1a='],
      ])('refuses a POST whose %s names a Next.js server action, recorded with why, nothing upstream', async (_label, type, body) => {
        const before = (await upstreamCalls()).length;
        const event = await expectKeywayRefusal(
          await send('/proxy/vendor/repos/acme/api/issues/7/comments', { method: 'POST', headers: { 'content-type': type }, body }),
          400,
          'invalid_request',
          'proxy_header_refused',
        );
        expect(event.detail).toBe('a $ACTION_* field in the request body is refused: a Next.js server action it names runs whatever page the path names');
        expect((await upstreamCalls()).length).toBe(before);
      });

      it.each([
        ['namespace=team-b', 'namespace'],
        ['ns=team-b', 'ns'],
        ['partition=team-b', 'partition'],
        ['a=1&Namespace=team-b', 'namespace'],
        ['a=1;ns=team-b', 'ns'],
        ['%6Es=team-b', 'ns'],
      ])('refuses a query that names a tenant (Nomad, Consul Enterprise): ?%s', async (query, field) => {
        const before = (await upstreamCalls()).length;
        const event = await expectKeywayRefusal(await send(`/proxy/vendor/x/y?${query}`), 400, 'invalid_request', 'proxy_header_refused');
        expect(event.detail).toBe(`a ${field} query parameter is refused: ${QUERY_TENANT}`);
        expect((await upstreamCalls()).length).toBe(before);
      });

      // Grafana's middleware reads orgId on every request: a signed-in user's current organisation becomes the one it
      // names (then a redirect), and every later request with that credential acts there, no header needed.
      it.each(['orgId=2', 'a=1&orgid=2', 'ORGID=2', 'orgId[]=2'])('refuses a query that moves a Grafana user to another organisation: ?%s', async (query) => {
        const before = (await upstreamCalls()).length;
        const event = await expectKeywayRefusal(await send(`/proxy/vendor/x/y?${query}`), 400, 'invalid_request', 'proxy_header_refused');
        expect(event.detail).toBe(
          'an orgId query parameter is refused: the upstream acts where the path says, never in the organisation a query names, which Grafana keeps as the user’s current one',
        );
        expect((await upstreamCalls()).length).toBe(before);
      });

      it('forwards the names that only look alike', async () => {
        const path = '/x/y?namespaces=1&dns=a&partitions=2&namespace_id=3&org=2&orgIds=3';
        const response = await send(`/proxy/vendor${path}`, { headers: { 'x-middleware': 'a', 'x-invoked-by': 'ci', 'x-grafana-device-id': 'd' } });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        const [call] = await callsTo(path);
        expect(call?.headers['x-middleware']).toBe('a');
        expect(call?.headers['x-invoked-by']).toBe('ci');
      });
    });

    it.runIf(runtime.sendBytes !== undefined)('ends a request whose body stalls at the deadline, and sends nothing upstream', async () => {
      const before = (await upstreamCalls()).length;
      const token = await job({ repository: 'acme/short' });
      const started = Date.now();
      const request = `PUT /proxy/short/upload HTTP/1.1\r\nHost: keyway.test\r\nAuthorization: Bearer ${token}\r\nContent-Length: 100\r\n\r\nhello`;
      expect(await runtime.sendBytes!(broker, request)).toMatch(/^HTTP\/1\.1 400 /);
      expect(Date.now() - started).toBeLessThan(5000);
      expect((await upstreamCalls()).length).toBe(before);
      const outcome = (await broker.recentAuditEvents()).find((event) => event.reason === 'malformed_request' && event.proxy?.upstream === 'short');
      expect(outcome?.proxy?.decision_id).toBeTypeOf('string');
    });

    it('refuses a request with both Content-Length and Transfer-Encoding (smuggling), and sends nothing upstream', async () => {
      const before = (await upstreamCalls()).length;
      const token = await job();
      if (runtime.sendBytes !== undefined) {
        // Node's HTTP parser refuses the pair before keyway sees the request: a bare 400 and the connection closed.
        const request =
          `POST /proxy/vendor/x/upload HTTP/1.1\r\nHost: keyway.test\r\nAuthorization: Bearer ${token}\r\n` +
          'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /proxy/vendor/x/smuggled HTTP/1.1\r\nHost: keyway.test\r\n\r\n';
        expect(await runtime.sendBytes(broker, request)).toMatch(/^HTTP\/1\.1 400 /);
      } else {
        const response = await broker.request('/proxy/vendor/x/upload', {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-length': '5', 'transfer-encoding': 'chunked' },
          body: 'hello',
        });
        await expectKeywayRefusal(response, 400, 'invalid_request', 'proxy_header_refused');
      }
      expect((await upstreamCalls()).length).toBe(before);
    });

    describe('bad input: each a clear 4xx, a Keyway-Error, an audit record, and nothing sent upstream', () => {
      const refusals: [string, () => Promise<Response>, number, string, Reason, string?][] = [
        [
          'an unknown upstream, to a caller a policy allows there',
          async () => send('/proxy/ghost/x/y', {}, await job({ repository: 'acme/ghost' })),
          404,
          'invalid_request',
          'proxy_upstream_unknown',
        ],
        // Any other caller is answered as at a declared upstream that no policy allows it: 'another upstream than the grant’s' below.
        ['an unknown upstream, to a caller no policy allows there', () => send('/proxy/nowhere/x/y'), 403, 'access_denied', 'proxy_not_allowed'],
        // Told only to a caller that authenticates: a stranger gets the answer a declared upstream gives.
        [
          'an unknown upstream, with no credential',
          () => send('/proxy/nowhere/x/y', { headers: { authorization: '' } }),
          401,
          'invalid_token',
          'proxy_unauthenticated',
        ],
        [
          'an unknown upstream, with a bad path and no credential',
          () => send('/proxy/nowhere/x//y', { headers: { authorization: '' } }),
          400,
          'invalid_request',
          'proxy_path_refused',
        ],
        ['no credential', () => send('/proxy/vendor/x/y', { headers: { authorization: '' } }), 401, 'invalid_token', 'proxy_unauthenticated'],
        // These two answer alike, Keyway-Error too: which issuers a policy trusts is not the stranger's to learn.
        [
          'a token of an issuer no policy trusts',
          () => send('/proxy/vendor/x/y', {}, unsigned({ sub: 'x' })),
          400,
          'invalid_request',
          'issuer_untrusted',
          'subject_token_unverified',
        ],
        [
          'an unsigned token (alg none) of the trusted CI issuer',
          () => send('/proxy/vendor/x/y', {}, unsigned(ciClaims(issuer.url, broker.issuer))),
          400,
          'invalid_request',
          'algorithm_not_allowed',
          'subject_token_unverified',
        ],
        [
          'an unsigned token (alg none) claiming to be the broker’s own',
          () => send('/proxy/keyed/x/y', {}, unsigned({ iss: broker.issuer, sub: 'x', aud: `${broker.issuer}/proxy/keyed`, exp: 4_000_000_000, jti: 'x' })),
          401,
          'invalid_token',
          'proxy_unauthenticated',
        ],
        [
          'a CI token bound to a key',
          async () => send('/proxy/vendor/x/y', {}, await job({ cnf: { jkt: 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } })),
          400,
          'invalid_dpop_proof',
          'subject_token_bound',
        ],
        // Refused as bound before its audience is judged, as one for an accepted audience is: the answer tells no audience.
        [
          'a CI token bound to a key, for an audience no policy accepts',
          async () =>
            send('/proxy/vendor/x/y', {}, await job({ aud: 'https://elsewhere.example', cnf: { jkt: 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } })),
          400,
          'invalid_dpop_proof',
          'subject_token_bound',
        ],
        [
          'an expired CI token',
          async () => send('/proxy/vendor/x/y', {}, await job({ exp: Math.floor(Date.now() / 1000) - 600 })),
          400,
          'invalid_request',
          'token_expired',
        ],
        [
          'X-HTTP-Method-Override',
          () => send('/proxy/vendor/x/y', { headers: { 'x-http-method-override': 'DELETE' } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ],
        ['X-HTTP-Method', () => send('/proxy/vendor/x/y', { headers: { 'x-http-method': 'DELETE' } }), 400, 'invalid_request', 'proxy_header_refused'],
        ['a _method query parameter', () => send('/proxy/vendor/x/y?_method=DELETE'), 400, 'invalid_request', 'proxy_header_refused'],
        ['a _method query parameter after a ;', () => send('/proxy/vendor/x/y?a=1;_method=DELETE'), 400, 'invalid_request', 'proxy_header_refused'],
        ['a percent-encoded _method', () => send('/proxy/vendor/x/y?%5Fmethod=DELETE'), 400, 'invalid_request', 'proxy_header_refused'],
        ['X-Original-Method', () => send('/proxy/vendor/x/y', { headers: { 'x-original-method': 'DELETE' } }), 400, 'invalid_request', 'proxy_header_refused'],
        ['X-Original-URL', () => send('/proxy/vendor/x/y', { headers: { 'x-original-url': '/admin/keys' } }), 400, 'invalid_request', 'proxy_header_refused'],
        ['X-Rewrite-URL', () => send('/proxy/vendor/x/y', { headers: { 'x-rewrite-url': '/admin/keys' } }), 400, 'invalid_request', 'proxy_header_refused'],
        ['X-Original-URI', () => send('/proxy/vendor/x/y', { headers: { 'x-original-uri': '/admin/keys' } }), 400, 'invalid_request', 'proxy_header_refused'],
        [
          'X-Script-Name (a WSGI app behind a prefix routes /x/admin/keys as /admin/keys)',
          () => send('/proxy/vendor/x/admin/keys', { headers: { 'x-script-name': '/x' } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ],
        [
          'X-Vault-Namespace (Vault reads /x/secret in namespace team-b as /team-b/x/secret)',
          () => send('/proxy/vendor/x/secret', { headers: { 'x-vault-namespace': 'team-b' } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ],
        [
          'X_Original_URL (CGI reads _ as -)',
          () => send('/proxy/vendor/x/y', { headers: { x_original_url: '/admin/keys' } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ],
        ['a .method query parameter (PHP reads . as _)', () => send('/proxy/vendor/x/y?.method=DELETE'), 400, 'invalid_request', 'proxy_header_refused'],
        // Who the upstream acts as is keyway's credential: a header that names someone else for it to act as is refused.
        ...(
          [
            ['Sudo (GitLab: an administrator’s token acts as the user it names)', 'sudo', 'root'],
            ['Impersonate-User (Kubernetes)', 'impersonate-user', 'system:admin'],
            ['Impersonate-Group (Kubernetes)', 'impersonate-group', 'system:masters'],
            ['Impersonate-Extra-Scopes (Kubernetes)', 'impersonate-extra-scopes', 'admin'],
            ['Remote-User (a server behind an authenticating proxy)', 'remote-user', 'admin'],
            ['X-Remote-User', 'x-remote-user', 'admin'],
            ['X-WEBAUTH-USER (Grafana, Gitea)', 'x-webauth-user', 'admin'],
            ['X-Auth-Request-Email (oauth2-proxy)', 'x-auth-request-email', 'admin@acme.dev'],
            ['X-Consumer-Username (Kong)', 'x-consumer-username', 'admin'],
            ['X-Goog-Authenticated-User-Email (Google IAP)', 'x-goog-authenticated-user-email', 'accounts.google.com:admin@acme.dev'],
            ['X-Amzn-Oidc-Identity (AWS ALB)', 'x-amzn-oidc-identity', 'admin'],
            ['X-MS-Client-Principal-Name (Azure App Service)', 'x-ms-client-principal-name', 'admin'],
            ['X_Remote_User (CGI reads _ as -)', 'x_remote_user', 'admin'],
            ['es-security-runas-user (Elasticsearch: a run_as credential acts as the user it names)', 'es-security-runas-user', 'elastic'],
            ['X-Gerrit-RunAs (Gerrit)', 'x-gerrit-runas', 'admin'],
            ['Remote-Groups (Authelia)', 'remote-groups', 'admins'],
            ['X-Remote-Group (Kubernetes request-header auth)', 'x-remote-group', 'system:masters'],
            ['X-User (nginx auth_request)', 'x-user', 'admin'],
            ['X-Auth-Roles (Louketo)', 'x-auth-roles', 'admin'],
            ['X-Pomerium-Claim-Email (Pomerium)', 'x-pomerium-claim-email', 'admin@acme.dev'],
            ['Tailscale-User-Login (Tailscale)', 'tailscale-user-login', 'admin@acme.dev'],
            ['X-Email (nginx auth_request)', 'x-email', 'admin@acme.dev'],
            ['X-Userinfo (Kong)', 'x-userinfo', 'eyJzdWIiOiJhZG1pbiJ9'],
            ['X-Auth-Username (Louketo)', 'x-auth-username', 'admin'],
            ['X-Auth-Userid (Louketo)', 'x-auth-userid', 'admin'],
            ['X-Auth-Email (Louketo)', 'x-auth-email', 'admin@acme.dev'],
            ['X-Auth-Subject (Louketo)', 'x-auth-subject', 'admin'],
            ['X-Auth-Groups (Louketo)', 'x-auth-groups', 'admins'],
            ['X-Pomerium-Jwt-Assertion (Pomerium)', 'x-pomerium-jwt-assertion', 'eyJhbGciOiJub25lIn0.e30.'],
            ['Remote-Name (Authelia)', 'remote-name', 'Admin'],
            ['Remote-Email (Authelia)', 'remote-email', 'admin@acme.dev'],
            ['X-Remote-Extra-Scopes (Kubernetes request-header auth)', 'x-remote-extra-scopes', 'admin'],
            ['X-Authenticated-Userid (Kong)', 'x-authenticated-userid', 'admin'],
            ['X-Goog-IAP-JWT-Assertion (Google IAP)', 'x-goog-iap-jwt-assertion', 'eyJhbGciOiJub25lIn0.e30.'],
            ['X-authentik-username (authentik)', 'x-authentik-username', 'akadmin'],
            ['X-Vouch-User (Vouch Proxy)', 'x-vouch-user', 'admin@acme.dev'],
            ['X-MS-TOKEN-AAD-ID-TOKEN (Azure App Service)', 'x-ms-token-aad-id-token', 'eyJhbGciOiJub25lIn0.e30.'],
            ['Teleport-Jwt-Assertion (Teleport)', 'teleport-jwt-assertion', 'eyJhbGciOiJub25lIn0.e30.'],
          ] as const
        ).map(([label, name, value]): [string, () => Promise<Response>, number, string, Reason] => [
          label,
          () => send('/proxy/vendor/x/y', { headers: { [name]: value } }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ]),
        ['a _method[] query parameter', () => send('/proxy/vendor/x/y?_method[]=DELETE'), 400, 'invalid_request', 'proxy_header_refused'],
        ...(
          [
            ['a form body', 'application/x-www-form-urlencoded', 'body=x&_method=DELETE'],
            ['a form body, after a ;', 'application/x-www-form-urlencoded; charset=utf-8', 'body=x;_method=DELETE'],
            ['a JSON body', 'application/json', '{"body":"x","_method":"DELETE"}'],
            ['a multipart body', 'multipart/form-data; boundary=b', '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n'],
            [
              'a multipart body, as an RFC 2231 name*',
              'multipart/form-data; boundary=b',
              "--b\r\nContent-Disposition: form-data; name*=utf-8''%5Fmethod\r\n\r\nDELETE\r\n--b--\r\n",
            ],
            ['a body with no content type (Rack reads it as a form)', undefined, 'body=x&_method=DELETE'],
            ['a form body whose type PHP cuts at the comma', 'application/x-www-form-urlencoded, text/plain', 'body=x&_method=DELETE'],
            ['a form body, as _method[]', 'application/x-www-form-urlencoded', 'body=x&_method[]=DELETE'],
            ['a form body, as .method', 'application/x-www-form-urlencoded', 'body=x&.method=DELETE'],
            ['a text/json body', 'text/json', '{"body":"x","_method":"DELETE"}'],
            ['a multipart body, as a Content-ID', 'multipart/form-data; boundary=b', '--b\r\nContent-ID: <_method>\r\n\r\nDELETE\r\n--b--\r\n'],
            [
              'a multipart body whose part header is folded (unreadable)',
              'multipart/form-data; boundary=b',
              '--b\r\nContent-Disposition: form-data;\r\n name="_method"\r\n\r\nDELETE\r\n--b--\r\n',
            ],
            ['a form body, its name cut at a NUL as PHP reads it', 'application/x-www-form-urlencoded', 'body=x&_method%00x=DELETE'],
            [
              'a multipart body whose boundary PHP and Rack read as "b" (boundary=b,x)',
              'multipart/form-data; boundary=b,x',
              '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n',
            ],
            ['a JSON body in UTF-16 (body-parser decodes it)', 'application/json; charset=utf-16le', '{"_method":"DELETE"}'],
          ] as const
        ).map(([label, type, body]): [string, () => Promise<Response>, number, string, Reason] => [
          `a _method field in ${label}`,
          () =>
            // A byte body: fetch gives it no content type of its own.
            send('/proxy/vendor/repos/acme/api/issues/7/comments', {
              method: 'POST',
              headers: type === undefined ? {} : { 'content-type': type },
              body: new TextEncoder().encode(body),
            }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ]),
        [
          'a compressed form body (body-parser inflates it before reading _method)',
          () =>
            send('/proxy/vendor/repos/acme/api/issues/7/comments', {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' },
              body: new TextEncoder().encode('not really gzip'),
            }),
          400,
          'invalid_request',
          'proxy_header_refused',
        ],
        ['a disallowed method', () => send('/proxy/vendor/repos/acme/api/issues/7', { method: 'DELETE' }), 403, 'access_denied', 'proxy_not_allowed'],
        ['another repository', () => send('/proxy/vendor/repos/acme/infra/issues'), 403, 'access_denied', 'proxy_not_allowed'],
        ['a path outside every rule', () => send('/proxy/vendor/admin/keys'), 403, 'access_denied', 'proxy_not_allowed'],
        ['another upstream than the grant’s', () => send('/proxy/short/x/y'), 403, 'access_denied', 'proxy_not_allowed'],
        ['an oversize body', () => send('/proxy/vendor/x/upload', { method: 'PUT', body: 'x'.repeat(5000) }), 413, 'invalid_request', 'request_too_large'],
        [
          'an oversize body streamed with no Content-Length, cut at the cap as it is read',
          () => {
            const body = new ReadableStream<Uint8Array>({
              start(controller) {
                for (let chunk = 0; chunk < 5; chunk += 1) controller.enqueue(new Uint8Array(1000).fill(120));
                controller.close();
              },
            });
            return send('/proxy/vendor/x/upload', { method: 'PUT', body, duplex: 'half' } as RequestInit);
          },
          413,
          'invalid_request',
          'request_too_large',
        ],
        ['an overlong query', () => send(`/proxy/vendor/x/y?q=${'a'.repeat(300)}`), 413, 'invalid_request', 'request_too_large'],
      ];
      it.each(refusals)('%s', async (_label, request, status, error, reason, keywayError) => {
        const before = (await upstreamCalls()).length;
        await expectKeywayRefusal(await request(), status, error, reason, keywayError);
        expect((await upstreamCalls()).length).toBe(before);
      });

      it('refuses /proxy with no upstream as a target that names none, not as an absolute URL, which it is not', async () => {
        for (const path of ['/proxy', '/proxy?x=1']) {
          const response = await send(path);
          const body = (await response.clone().json()) as Record<string, unknown>;
          await expectKeywayRefusal(response, 400, 'invalid_request', 'proxy_path_refused');
          expect(body['error_description'], path).toBe('the request target names no upstream: send /proxy/{upstream}/{path}');
        }
      });

      it('records a Bearer credential that is no JWT (a secret sent by mistake) by its length alone, never by its hash', async () => {
        const secret = `correct.horse.battery-${crypto.randomUUID().slice(0, 8)}`;
        const event = await expectKeywayRefusal(await send('/proxy/vendor/x/y', {}, secret), 400, 'invalid_request', 'token_malformed');
        expect(event.subject_token).toEqual({ length: secret.length });
        expect(JSON.stringify(event)).not.toContain(secret);
        expect(JSON.stringify(event)).not.toContain(sha256Hex(secret));
      });

      // Path confusion, after Orange Tsai's "Breaking Parser Logic" (Black Hat 2018) and PortSwigger's path normalisation research.
      // `parsed`: what a URL parser in front of keyway (workerd's) already resolves, so the request keyway sees is another path,
      // decided as such (the remaining path names another repository: refused by policy); sent raw (Node), keyway refuses the
      // ambiguity itself. The path that reaches a rule is the path the upstream receives, either way.
      const traversals: [string, Reason, 'parsed'?][] = [
        ['/proxy/vendor/repos/acme/api/../infra/issues', 'proxy_path_refused', 'parsed'],
        ['/proxy/vendor/repos/acme/api/%2e%2e/infra/issues', 'proxy_path_refused', 'parsed'],
        ['/proxy/vendor/repos/acme/api/.%2E/infra/issues', 'proxy_path_refused', 'parsed'],
        ['/proxy/vendor/repos/acme/api/./../infra/issues', 'proxy_path_refused', 'parsed'],
        ['/proxy/vendor/repos/acme/api/..;/infra/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/issues;x=1', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%252e%252e/infra', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/..%2finfra/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api%2f..%2finfra/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/..%5cinfra/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%c0%ae%c0%ae/infra', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%e0%80%ae/infra', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%ef%bc%8e%ef%bc%8e/infra', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%e2%80%a4%e2%80%a4/infra', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api//issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/issues/', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%00/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%0d%0aX-Injected:%201', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%e2%80%ae/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/acme/api/%zz/issues', 'proxy_path_refused'],
        ['/proxy/vendor/repos/ACME/API/../../acme/infra/issues', 'proxy_path_refused', 'parsed'],
      ];
      it
        .runIf(runtime.sendRaw !== undefined)
        .each([
          'http://keyway.test/proxy/vendor/repos/acme/api/issues',
          'http://keyway.test/proxy/vendor/repos/acme/api/issues/%2e%2e/./pulls',
          '/./proxy/vendor/repos/acme/api/issues',
          '/x/../proxy/vendor/repos/acme/api/issues',
        ])('a request target a URL parser resolves before /proxy/: %s', async (target) => {
        const before = (await upstreamCalls()).length;
        const authorization = `Bearer ${await job()}`;
        await expectKeywayRefusal(await runtime.sendRaw!(broker, target, { authorization }), 400, 'invalid_request', 'proxy_path_refused');
        expect((await upstreamCalls()).length).toBe(before);
      });

      it.each(traversals)('%s', async (target, reason, parsed) => {
        const before = (await upstreamCalls()).length;
        const authorization = `Bearer ${await job()}`;
        if (runtime.sendRaw !== undefined) {
          await expectKeywayRefusal(await runtime.sendRaw(broker, target, { authorization }), 400, 'invalid_request', reason);
        } else {
          const response = await broker.request(target, { headers: { authorization } });
          if (parsed === 'parsed') {
            // Resolved before keyway: the path that remains names another repository, which no rule allows.
            await expectKeywayRefusal(response, 403, 'access_denied', 'proxy_not_allowed');
          } else {
            await expectKeywayRefusal(response, 400, 'invalid_request', reason);
          }
        }
        expect((await upstreamCalls()).length).toBe(before);
      });
    });
  });
}

/** The GitHub App upstream against the fake GitHub API: `gh`-shaped calls, an installation token per repository and rule, minted once. */
export function proxyGitHubSuite(runtime: ProxyRuntime): void {
  describe(`proxy mode to GitHub on ${runtime.name}`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let github: FakeGitHub;
    let other: TestIssuer;
    /** A GitHub Actions issuer of another GitHub deployment than the App's (a GitHub Enterprise Server beside it). */
    let server: TestIssuer;
    let people: TestIssuer;
    const logLines: string[] = [];
    const GH_HEADERS = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'content-type': 'application/json' };

    beforeAll(async () => {
      issuer = freshIssuer(runtime.issuerBase(), 'proxy-github');
      other = freshIssuer(runtime.issuerBase(), 'proxy-github-other');
      server = freshIssuer(runtime.issuerBase().replace('//127.0.0.1:', '//localhost:'), 'proxy-github-server');
      people = freshIssuer(runtime.issuerBase(), 'proxy-github-people');
      github = await FakeGitHub.create(runtime.githubBase());
      await github.install(ACME_INSTALLATION);
      // Other owners' accounts: globex's name now on an account that is not the one the policy pins (renamed, registered
      // again by someone else), umbrella's and hooli's on the pinned one, initech's pinned by nobody.
      for (const [id, owner, ownerId] of [
        [7101, 'globex', 9999],
        [7102, 'umbrella', 4343],
        [7103, 'initech', 5555],
        [7104, 'hooli', 4444],
      ] as const) {
        await github.install({ id, owner, ownerId, repositories: [{ id: id * 10, name: 'config' }], permissions: { contents: 'read', metadata: 'read' } });
      }
      // An account whose token answers leave out the repository (and so its id).
      await github.install({
        id: 7106,
        owner: 'piedpiper',
        ownerId: 4545,
        repositories: [{ id: 71060, name: 'config' }],
        permissions: { contents: 'read', metadata: 'read' },
        tokenAnswerNamesNoRepository: true,
      });
      // An account whose tokens GitHub says expire in a minute: within keyway's reuse margin as they come.
      await github.install({
        id: 7109,
        owner: 'soylent',
        ownerId: 4949,
        repositories: [{ id: 71090, name: 'config' }],
        permissions: { contents: 'read', metadata: 'read' },
        tokenLifetimeMs: 60_000,
      });
      // Accounts whose tokens GitHub mints, then answers for a second past the github-slow upstream's one-second deadline.
      for (const [id, owner, ownerId] of [
        [7107, 'wayne', 4747],
        [7108, 'stark', 4848],
      ] as const) {
        await github.install({
          id,
          owner,
          ownerId,
          repositories: [{ id: id * 10, name: 'config' }],
          permissions: { contents: 'read', metadata: 'read' },
          tokenDelayMs: 2000,
        });
      }
      const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
      broker = await runtime.start(
        {
          'proxy/github.yaml': `${header}match: { repository_owner_id: "1200934" }
grant:
  proxy:
    upstream: github
    allow:
      - { chore: check-run }
      - { method: GET, path: "/repos/{repository}/contents/**", permissions: { contents: read } }
      - { method: GET, path: "/repos/{repository}/issues", permissions: { issues: read } }
      - { method: GET, path: "/user" }
      - { method: GET, path: "/repos/globex/config/contents/public/**", permissions: { contents: read }, owner_id: "9999" }
      - { method: GET, path: "/repos/globex/config/contents/**", permissions: { contents: read }, owner_id: "4242" }
      - { method: GET, path: "/repos/umbrella/config/contents/**", permissions: { contents: read }, owner_id: "4343" }
      - { method: GET, path: "/repos/initech/config/contents/**", permissions: { contents: read } }
      - { method: GET, path: "/repos/hooli/config/contents/**", permissions: { contents: read }, owner_id: "4444" }
      - { method: GET, path: "/repos/piedpiper/config/contents/**", permissions: { contents: read }, owner_id: "4545" }
      - { method: GET, path: "/repos/soylent/config/contents/**", permissions: { contents: read }, owner_id: "4949" }
`,
          'proxy/github-slow.yaml': `${header}match: { repository_owner_id: "1200934" }
grant:
  proxy:
    upstream: github-slow
    allow:
      - { method: GET, path: "/repos/wayne/config/contents/**", permissions: { contents: read }, owner_id: "4747" }
      - { method: GET, path: "/repos/stark/config/contents/**", permissions: { contents: read }, owner_id: "4848" }
`,
          // That server's jobs of its account 1200934, the number acme's account has on the App's GitHub.
          'proxy/server.yaml': `version: 1
issuer: { kind: github, url: "${server.url}" }
match: { repository_owner_id: "1200934" }
grant:
  proxy: { upstream: github, allow: [{ method: GET, path: "/repos/{repository}/contents/**", permissions: { contents: read } }] }
`,
          // Another issuer whose tokens carry claims of GitHub's names: they say nothing of a GitHub account.
          'proxy/generic.yaml': `version: 1
issuer: { kind: oidc, url: "${other.url}" }
match: { sub: generic-caller }
grant:
  proxy: { upstream: github, allow: [{ method: GET, path: "/repos/{repository}/contents/**", permissions: { contents: read } }] }
`,
          ...auditorPolicies(people, runtime.brokerIssuer),
        },
        {
          settings: {
            ...github.settings,
            KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
            KEYWAY_PROXY_UPSTREAMS:
              'upstreams:\n  github:\n    auth: { kind: github-app }\n  github-slow:\n    auth: { kind: github-app }\n    limits: { timeout_seconds: 1 }\n',
          },
          log: jsonLogger({}, { write: (line) => logLines.push(line) }),
        },
      );
    });
    afterAll(() => broker.close());

    const job = (repository = 'acme/api'): Promise<string> => issuer.sign(ciClaims(issuer.url, broker.issuer, { repository }));
    const checkRun = async (path: string, token: string): Promise<Response> =>
      broker.request(path, { method: 'POST', headers: { ...GH_HEADERS, authorization: `Bearer ${token}` }, body: JSON.stringify({ name: 'lint' }) });
    const mints = async () => (await github.calls()).filter((call) => call.path.endsWith('/access_tokens'));

    it('refuses a path outside /repos/{owner}/{repo}/… even where a rule allows it: an installation token reaches one repository', async () => {
      const before = (await mints()).length;
      const response = await broker.request('/proxy/github/user', { headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` } });
      expect(response.status).toBe(403);
      expect(response.headers.get('keyway-error')).toBe('proxy_not_allowed');
      const body = (await response.json()) as Record<string, unknown>;
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ decision: 'denied', reason: 'proxy_not_allowed' });
      expect((await mints()).length).toBe(before);
    });

    it('reads and checks the body before it mints: a body refused for its _method costs no installation token', async () => {
      const before = (await mints()).length;
      const response = await broker.request('/proxy/github/repos/acme/never-minted/check-runs', {
        method: 'POST',
        headers: { ...GH_HEADERS, authorization: `Bearer ${await job('acme/never-minted')}` },
        body: JSON.stringify({ name: 'lint', _method: 'DELETE' }),
      });
      expect(response.status).toBe(400);
      expect(response.headers.get('keyway-error')).toBe('proxy_header_refused');
      expect((await mints()).length).toBe(before);
    });

    it('mints an installation token scoped to the one repository and the chore’s permissions, once for several calls, never returned', async () => {
      const token = await job();
      const first = await checkRun('/proxy/github/repos/acme/api/check-runs', token);
      expect(first.status).toBe(201);
      const answer = await first.text();
      // GitHub compares owner and repository names without case; the token is still scoped to the claim's repository.
      const second = await checkRun('/proxy/github/repos/ACME/Api/check-runs', token);
      expect(second.status).toBe(201);
      await second.arrayBuffer();

      const minted = await mints();
      expect(minted).toHaveLength(1);
      expect(minted[0]!.body).toEqual({ repositories: ['api'], permissions: { checks: 'write' } });
      const runs = (await github.calls()).filter((call) => call.path.endsWith('/check-runs'));
      // Addressed by the id of the repository the token holds, whatever case the caller wrote.
      expect(runs.map((call) => call.path)).toEqual(['/repositories/734201/check-runs', '/repositories/734201/check-runs']);
      expect(new Set(runs.map((call) => call.auth)).size).toBe(1);
      expect(runs[0]!.auth).toMatch(/^token:/);
      const [state] = await github.tokens();
      expect(state).toMatchObject({ repositories: ['api'], permissions: { checks: 'write', metadata: 'read' } });
      expect(answer).not.toMatch(/ghs_/);
      expect(JSON.stringify(Object.fromEntries(first.headers))).not.toMatch(/ghs_/);

      const decision = await broker.auditEvent(first.headers.get('keyway-audit-event-id')!);
      // The caller's own account, pinned by the id its token carries.
      expect(decision?.proxy).toMatchObject({
        rule: 'chore check-run',
        credential: { repository: 'acme/api', permissions: { checks: 'write' }, owner_id: '1200934' },
      });
      expect(JSON.stringify(decision)).not.toMatch(/ghs_/);
      // The outcome record adds the installation token's SHA-256 (the fake GitHub logs its first 12 hex digits), never the token.
      const outcome = await waitForOutcomeOf(broker, first.headers.get('keyway-audit-event-id'));
      expect(outcome?.proxy?.credential).toMatchObject({ repository: 'acme/api', permissions: { checks: 'write' }, repository_id: 734201 });
      expect(outcome?.proxy?.credential?.token_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(outcome?.proxy?.credential?.token_sha256?.slice(0, 12)).toBe(runs[0]!.auth.slice('token:'.length));
      expect(JSON.stringify(outcome)).not.toMatch(/ghs_/);
    });

    it('mints another token for another rule’s permissions, and none for a repository the claims do not name', async () => {
      const before = (await mints()).length;
      const read = await broker.request('/proxy/github/repos/acme/api/contents/README.md', {
        headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` },
      });
      expect(read.headers.get('keyway-error')).toBeNull();
      await read.arrayBuffer();
      const minted = await mints();
      expect(minted).toHaveLength(before + 1);
      expect(minted.at(-1)!.body).toEqual({ repositories: ['api'], permissions: { contents: 'read' } });

      const other = await checkRun('/proxy/github/repos/acme/infra/check-runs', await job());
      expect(other.status).toBe(403);
      expect(other.headers.get('keyway-error')).toBe('proxy_not_allowed');
      expect(await mints()).toHaveLength(before + 1);
    });

    it("hands a repository's token to no job of another repository of the same installation: each job reads its own", async () => {
      await github.putFile({ owner: 'acme', repo: 'api', path: 'notes.md', text: 'notes of api' });
      await github.putFile({ owner: 'acme', repo: 'docs', path: 'notes.md', text: 'notes of docs' });
      const read = async (repository: string): Promise<string> => {
        const response = await broker.request(`/proxy/github/repos/${repository}/contents/notes.md`, {
          headers: { ...GH_HEADERS, authorization: `Bearer ${await job(repository)}` },
        });
        expect(response.status, await response.clone().text()).toBe(200);
        const { content } = (await response.json()) as { content: string };
        return atob(content.replace(/\n/g, ''));
      };
      expect(await read('acme/api')).toBe('notes of api');
      const calls = (await github.calls()).length;
      // The same owner, account and permissions: still a token of its own, at its own repository's id.
      expect(await read('acme/docs')).toBe('notes of docs');
      const made = (await github.calls()).slice(calls);
      expect(made.map(({ method, path, body }) => [method, path, body])).toEqual([
        ['POST', '/app/installations/5150/access_tokens', { repositories: ['docs'], permissions: { contents: 'read' } }],
        ['GET', '/repositories/734202/contents/notes.md', undefined],
      ]);
    });

    it('hands a token minted for the account one rule pins to no rule that pins another account by the same login', async () => {
      // globex's login is now on account 9999: a rule pinning that account for public/** gets a token of 9999's repository.
      const read = async (path: string) =>
        broker.request(`/proxy/github/repos/globex/config/contents/${path}`, { headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` } });
      const current = await read('public/settings.yaml');
      expect(current.headers.get('keyway-error'), await current.clone().text()).toBeNull();
      await current.arrayBuffer();
      // The rule for the rest pins 4242, the account the login was on: that token is not for it.
      const pinnedElsewhere = await read('settings.yaml');
      expect(pinnedElsewhere.status).toBe(400);
      expect(pinnedElsewhere.headers.get('keyway-error')).toBe('github_owner_mismatch');
    });

    it("holds another owner's repository to the account id its rule pins: a name on another account, or a rule that pins none, gets no token", async () => {
      const read = async (owner: string) =>
        broker.request(`/proxy/github/repos/${owner}/config/contents/settings.yaml`, { headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` } });
      const before = (await mints()).length;
      const impostor = await read('globex');
      expect(impostor.status).toBe(400);
      expect(impostor.headers.get('keyway-error')).toBe('github_owner_mismatch');
      // Allowed by the policy, refused at the credential: the outcome record says why.
      const refused = await broker.auditEvent(((await impostor.json()) as Record<string, unknown>)['audit_event_id'] as string);
      expect(refused).toMatchObject({ decision: 'denied', reason: 'github_owner_mismatch' });
      expect(refused?.detail).toContain('on account id 9999, not 4242');
      const unpinned = await read('initech');
      expect(unpinned.status).toBe(403);
      expect(unpinned.headers.get('keyway-error')).toBe('proxy_not_allowed');
      expect(((await unpinned.json()) as Record<string, unknown>)['error_description']).toContain("initech is not the caller's own account");
      expect(await mints()).toHaveLength(before);
      expect((await github.calls()).filter((call) => call.path.startsWith('/repos/globex') || call.path.startsWith('/repos/initech'))).toEqual([]);

      // A caller of another issuer names GitHub's owner and its id in claims of the same names: not its own account.
      const claimed = await broker.request('/proxy/github/repos/acme/api/contents/README.md', {
        headers: {
          ...GH_HEADERS,
          authorization: `Bearer ${await other.sign({
            ...ciClaims(other.url, broker.issuer, { sub: 'generic-caller' }),
            repository: 'acme/api',
            repository_owner: 'acme',
            repository_owner_id: '1200934',
          })}`,
        },
      });
      expect(claimed.status).toBe(403);
      expect(claimed.headers.get('keyway-error')).toBe('proxy_not_allowed');
      expect(await mints()).toHaveLength(before);
      // Nor does a job of another GitHub deployment, whose account of acme's login has the number acme's has on the App's.
      const elsewhere = await broker.request('/proxy/github/repos/acme/api/contents/README.md', {
        headers: {
          ...GH_HEADERS,
          authorization: `Bearer ${await server.sign(ciClaims(server.url, broker.issuer, { repository: 'acme/api', repository_owner: 'acme', repository_owner_id: '1200934' }))}`,
        },
      });
      expect(elsewhere.status).toBe(403);
      expect(elsewhere.headers.get('keyway-error')).toBe('proxy_not_allowed');
      expect(await mints()).toHaveLength(before);

      const pinned = await read('umbrella');
      expect(pinned.headers.get('keyway-error')).toBeNull();
      await pinned.arrayBuffer();
      expect(await mints()).toHaveLength(before + 1);
      const decision = await broker.auditEvent(pinned.headers.get('keyway-audit-event-id')!);
      expect(decision?.proxy?.credential).toMatchObject({ repository: 'umbrella/config', owner_id: '4343' });
    });

    it('never reuses an installation token GitHub says expires within the minute', async () => {
      // soylent's tokens expire a minute after they are minted: each is past its reuse by the time it is cached.
      const read = async () => {
        const response = await broker.request('/proxy/github/repos/soylent/config/contents/settings.yaml', {
          headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` },
        });
        expect(response.headers.get('keyway-error'), await response.clone().text()).toBeNull();
        await response.arrayBuffer();
      };
      const soylentMints = async () => (await mints()).filter((call) => call.path === '/app/installations/7109/access_tokens').length;
      await read();
      await read();
      expect(await soylentMints()).toBe(2);
    });

    it("keeps reaching the pinned account's repository when its login is renamed and registered again while the token is reused", async () => {
      const read = async (): Promise<string> => {
        const response = await broker.request('/proxy/github/repos/hooli/config/contents/settings.yaml', {
          headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` },
        });
        expect(response.status).toBe(200);
        const { content } = (await response.json()) as { content: string };
        return atob(content.replace(/\n/g, ''));
      };
      await github.putFile({ owner: 'hooli', repo: 'config', path: 'settings.yaml', text: 'deploy: hooli' });
      const before = (await mints()).length;
      expect(await read()).toBe('deploy: hooli');
      expect(await mints()).toHaveLength(before + 1);

      // hooli renames its account; someone else registers the login, installs the App and publishes a repository of the same name.
      await github.install({
        id: 7104,
        owner: 'hooli-renamed',
        ownerId: 4444,
        repositories: [{ id: 71040, name: 'config' }],
        permissions: { contents: 'read', metadata: 'read' },
      });
      await github.putFile({ owner: 'hooli-renamed', repo: 'config', path: 'settings.yaml', text: 'deploy: hooli' });
      await github.install({
        id: 7105,
        owner: 'hooli',
        ownerId: 6666,
        repositories: [{ id: 71050, name: 'config', public: true }],
        permissions: { contents: 'read', metadata: 'read' },
      });
      await github.putFile({ owner: 'hooli', repo: 'config', path: 'settings.yaml', text: 'deploy: impostor' });

      // The token minted for hooli's repository is reused, and the call goes to that repository by its id, not to the name's new holder.
      const calls = (await github.calls()).length;
      expect(await read()).toBe('deploy: hooli');
      expect(await mints()).toHaveLength(before + 1);
      const made = (await github.calls()).slice(calls);
      expect(made.map(({ method, path, status }) => [method, path, status])).toEqual([['GET', '/repositories/71040/contents/settings.yaml', 200]]);
    });

    it("follows GitHub's pagination through keyway: each page's Link, at the repository's id, comes back as the caller's own path", async () => {
      const token = await job();
      const titles: string[] = [];
      const links: string[] = [];
      let url: string | undefined = `${broker.issuer}/proxy/github/repos/Acme/API/issues`;
      while (url !== undefined) {
        expect(url.startsWith(`${broker.issuer}/proxy/github/repos/Acme/API/issues`)).toBe(true);
        const page = await broker.request(url.slice(broker.issuer.length), { headers: { ...GH_HEADERS, authorization: `Bearer ${token}` } });
        expect(page.status).toBe(200);
        titles.push(...((await page.json()) as { title: string }[]).map((issue) => issue.title));
        const link = page.headers.get('link') ?? '';
        links.push(link);
        url = /<([^>]+)>; rel="next"/.exec(link)?.[1];
      }
      expect(titles).toEqual(['issue 1', 'issue 2', 'issue 3', 'issue 4', 'issue 5']);
      expect(links[0]).toBe(
        `<${broker.issuer}/proxy/github/repos/Acme/API/issues?page=2>; rel="next", <${broker.issuer}/proxy/github/repos/Acme/API/issues?page=3>; rel="last"`,
      );
      expect(links.join(', ')).not.toContain('/repositories/');
    });

    it('makes no call, and takes the token back, when GitHub does not say which repository id the token holds', async () => {
      const calls = (await github.calls()).length;
      const response = await broker.request('/proxy/github/repos/piedpiper/config/contents/settings.yaml', {
        headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` },
      });
      expect(response.status).toBe(502);
      expect(response.headers.get('keyway-error')).toBe('proxy_upstream_unavailable');
      const outcome = await broker.auditEvent(((await response.json()) as Record<string, unknown>)['audit_event_id'] as string);
      expect(outcome).toMatchObject({ decision: 'error', reason: 'proxy_upstream_unavailable' });
      expect(outcome?.detail).toContain('did not say which repository id');
      const made = (await github.calls()).slice(calls);
      expect(made.map(({ method, path }) => `${method} ${path}`)).toEqual([
        'GET /orgs/piedpiper/installation',
        'POST /app/installations/7106/access_tokens',
        'DELETE /installation/token',
      ]);
      expect((await github.tokens()).at(-1)).toMatchObject({ revoked: true, repositories: ['config'] });
    });

    /** A read through github-slow, whose token GitHub answers only after the upstream's deadline. */
    const slowRead = async (owner: string, token?: string): Promise<{ status: number; timedOut: AuditEvent | undefined }> => {
      const response = await broker.request(`/proxy/github-slow/repos/${owner}/config/contents/settings.yaml`, {
        headers: { ...GH_HEADERS, authorization: `Bearer ${token ?? (await job())}` },
      });
      const body = (await response.json()) as Record<string, unknown>;
      return { status: response.status, timedOut: await broker.auditEvent(body['audit_event_id'] as string) };
    };
    /** The records the late mint of the request that `timedOut` ended appended, once there are any (bounded). */
    const lateRecordsOf = (timedOut: AuditEvent | undefined, minimum = 1): Promise<AuditEvent[]> =>
      vi.waitFor(
        async () => {
          const late = (await broker.recentAuditEvents()).filter(
            (event) => event.reason === 'proxy_credential_late' && event.proxy?.decision_id === timedOut?.proxy?.decision_id,
          );
          expect(late.length).toBeGreaterThanOrEqual(minimum);
          return late;
        },
        { timeout: 10_000, interval: 50 },
      );

    it('names in the log the token GitHub minted after the deadline answered 504, and revokes it when its time comes', async () => {
      const before = (await github.tokens()).length;
      const { status, timedOut } = await slowRead('wayne');
      expect(status).toBe(504);
      expect(timedOut).toMatchObject({ decision: 'error', reason: 'proxy_upstream_timeout' });
      expect(timedOut?.proxy?.credential).not.toHaveProperty('token_sha256');

      const [minted, ...more] = (await github.tokens()).slice(before);
      expect(more).toEqual([]);
      // One record, of the same request and decision as the 504's, naming the token by its hash and scope: never the token.
      const late = await lateRecordsOf(timedOut);
      expect(late).toHaveLength(1);
      const [record] = late;
      expect(record).toMatchObject({ decision: 'granted', reason: 'proxy_credential_late', request: { id: timedOut?.request.id } });
      expect(record).not.toHaveProperty('policy');
      expect(record?.detail).toContain('minted after the 1 s deadline had answered the request');
      expect(record?.proxy?.credential).toMatchObject({
        repository: 'wayne/config',
        permissions: { contents: 'read' },
        owner_id: '4747',
        repository_id: 71070,
        token_sha256: minted?.sha256,
      });
      // When keyway revokes it: ten minutes after the request asked for it, as an exchange's token is dated, however late
      // GitHub minted it (2 s, past the 1 s deadline): GitHub's latency does not lengthen its life.
      const decision = await broker.auditEvent(timedOut?.proxy?.decision_id ?? '');
      const revokedAfter = Date.parse(record?.proxy?.credential?.expires_at ?? '') - Date.parse(decision?.time ?? '');
      expect(revokedAfter).toBeGreaterThanOrEqual(600_000);
      expect(revokedAfter).toBeLessThan(600_000 + 1500);
      expect(JSON.stringify(record)).not.toMatch(/ghs_/);
      // The /audit page shows it too, as the record holds it.
      const page = await broker.request(`/audit/events/${record?.id}`, {
        headers: { cookie: await pageCookie(broker, await auditorToken(broker, people)) },
      });
      expect(page.status).toBe(200);
      expect(/<dd data-field="proxy token revoked at">([^<]*)<\/dd>/.exec(await page.text())?.[1]).toBe(record?.proxy?.credential?.expires_at);

      // Its ten minutes pass: the schedule's row, under the decision record's id as every proxy token's, falls due.
      await broker.tamper('UPDATE github_token_revocations SET next_attempt_at = 0 WHERE id = ?', [decision?.id ?? '']);
      await broker.revokeDueGitHubTokens();
      expect((await github.tokens()).slice(before)).toEqual([{ ...minted, revoked: true }]);
      const revocations = (await github.calls()).filter((call) => call.method === 'DELETE' && call.path === '/installation/token' && call.status === 204);
      expect(revocations.map((call) => call.auth)).toContain(`token:${minted?.sha256.slice(0, 12)}`);
    });

    it('takes the late token back at once when its record cannot be appended, and hands it to no later request: no record, no token', async () => {
      const before = (await github.tokens()).length;
      await broker.tamper(
        "CREATE TRIGGER late_record_down BEFORE INSERT ON audit_events WHEN NEW.reason = 'proxy_credential_late' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
        [],
      );
      let answer: Awaited<ReturnType<typeof slowRead>>;
      try {
        answer = await slowRead('stark');
        await vi.waitFor(async () => expect((await github.tokens()).slice(before)).toMatchObject([{ revoked: true }]), { timeout: 10_000, interval: 50 });
      } finally {
        // Named on audit_events so the Workers harness runs it on every audit shard, as it ran the CREATE.
        await broker.tamper('DROP TRIGGER late_record_down /* audit_events */', []);
      }
      expect(answer.status).toBe(504);
      const logged = logLines.map((text) => JSON.parse(text) as Record<string, unknown>).filter((entry) => entry['request_id'] === answer.timedOut?.request.id);
      expect(logged.filter((entry) => entry['level'] === 'error').map((entry) => entry['message'])).toEqual([
        'audit append failed; the GitHub token minted after the deadline is not recorded, and is revoked at once',
      ]);
      const decisionId = answer.timedOut?.proxy?.decision_id;
      expect((await broker.recentAuditEvents()).filter((event) => event.proxy?.decision_id === decisionId).map((event) => event.reason)).toEqual([
        'proxy_upstream_timeout',
      ]);

      // GitHub answers at once again: the next request gets a token of its own, not the one taken back.
      await github.install({
        id: 7108,
        owner: 'stark',
        ownerId: 4848,
        repositories: [{ id: 71080, name: 'config' }],
        permissions: { contents: 'read', metadata: 'read' },
      });
      await github.putFile({ owner: 'stark', repo: 'config', path: 'settings.yaml', text: 'deploy: stark' });
      const next = await broker.request('/proxy/github-slow/repos/stark/config/contents/settings.yaml', {
        headers: { ...GH_HEADERS, authorization: `Bearer ${await job()}` },
      });
      expect(next.status).toBe(200);
      await next.arrayBuffer();
      const [revoked, fresh, ...more] = (await github.tokens()).slice(before);
      expect(more).toEqual([]);
      expect(revoked?.revoked).toBe(true);
      expect(fresh?.revoked).toBe(false);
      const outcome = await waitForOutcomeOf(broker, next.headers.get('keyway-audit-event-id'));
      expect(outcome?.proxy?.credential?.token_sha256).toBe(fresh?.sha256);
    });
  });
}

/** The outcome record of a proxied request: appended once the answer has streamed, so read until it is there (bounded). */
async function waitForOutcomeOf(broker: BrokerHarness, decisionId: string | null): Promise<AuditEvent | undefined> {
  expect(decisionId).toBeTypeOf('string');
  for (let attempt = 0; attempt < 100; attempt++) {
    const outcome = (await broker.recentAuditEvents()).find((event) => event.proxy?.decision_id === decisionId);
    if (outcome !== undefined) return outcome;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}
