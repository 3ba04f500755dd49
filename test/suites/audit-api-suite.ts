import { base64url, createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecordJson } from '../../src/core/audit/record-json.ts';
import { fromRecordJson } from '../../src/core/audit/record-json.ts';
import type { Checkpoint } from '../../src/core/audit/checkpoint.ts';
import { verifyAuditLog } from '../../src/core/audit/verify-chain.ts';
import { verifyShardedAuditLog } from '../../src/core/audit/verify-shards.ts';
import { remoteAuditLog } from '../../src/cli/remote-audit-log.ts';
import { verifyCheckpoint } from '../../src/core/audit/verify-checkpoint.ts';
import type { Reason } from '../../src/core/errors/reasons.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';
import { pageCookie, postSignInForm, signInToPage } from '../support/audit-page-sign-in.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { ACME_INSTALLATION, githubForm, githubPolicies, ORGANIZATION_PERMISSIONS_SETTING } from './github-exchange-suite.ts';
import { athOf, DpopKey, type ProofOptions } from '../support/dpop-key.ts';
import { cloudPolicies } from './cloud-exchange-suite.ts';
import {
  exchangeForm,
  freshIssuer,
  GRANT_TYPE,
  ID_TOKEN,
  postToken,
  suitePolicies,
  type BrokerClient,
  type BrokerHarness,
  type StartBroker,
} from './exchange-suite.ts';

/** Policies for auditors: a person's identity token (a plain OIDC issuer) exchanged for a token addressed to the broker itself. */
export function auditorPolicies(people: TestIssuer, brokerIssuer: string): Record<string, string> {
  return {
    'auditors/alice.yaml': `
version: 1
description: auditors read the audit log
issuer: "${people.url}"
match:
  sub: alice@acme.dev
grant:
  audience: ${brokerIssuer}
  scopes: [audit:read]
  ttl: 10m
`,
    'auditors/bob.yaml': `
version: 1
description: bob may reach the broker, but not read the log
issuer: "${people.url}"
match:
  sub: bob@acme.dev
grant:
  audience: ${brokerIssuer}
  scopes: [keys:read]
`,
    'templates/team.yaml': `
version: 1
issuer: "${people.url}"
match:
  sub: svc-templated
grant:
  audience: https://t.example
  subject: "team:{team}"
`,
  };
}

/** A person of `people` who may hold a keyway token for the broker itself with `scopes`: an operator. */
export function operatorPolicy(people: TestIssuer, brokerIssuer: string, sub: string, scopes: readonly string[]): string {
  return `version: 1\ndescription: ${sub} operates the broker\nissuer: "${people.url}"\nmatch: { sub: ${sub} }\ngrant: { audience: ${brokerIssuer}, scopes: [${scopes.join(', ')}] }\n`;
}

export async function personToken(people: TestIssuer, brokerIssuer: string, sub: string, extra: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return people.sign({ iss: people.url, aud: brokerIssuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID(), ...extra });
}

/** Exchanges a person's identity token for a keyway token addressed to the broker itself. */
export async function auditorToken(broker: BrokerClient, people: TestIssuer, sub = 'alice@acme.dev', scope = 'audit:read'): Promise<string> {
  const result = await postToken(broker, exchangeForm(await personToken(people, broker.issuer, sub), { audience: broker.issuer, scope }));
  expect(result.status).toBe(200);
  return result.body['access_token'] as string;
}

const SERVICE_ACCOUNT_UID = '5d7c3a9e-2f41-4b8e-9c06-1a2b3c4d5e6f';

/** The issuer both test harnesses give the broker: policies naming it are written before it starts. */
const HARNESS_ISSUER = 'https://keyway.test';
const PROTECTED = [
  '/v1/audit/events',
  '/v1/audit/events/01ANYTHING',
  '/v1/audit/export',
  '/v1/audit/export?format=csv',
  '/v1/audit/stats',
  '/v1/audit/alerts',
  '/v1/audit/shards',
  '/v1/inventory',
  '/v1/inventory?format=csv',
  '/v1/inventory/usage',
];

/** The audit query API end to end, on whichever runtime: who may read, what they read, and a record for every reason code. */
export function auditApiSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`the audit API on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let generic: TestIssuer;
    let people: TestIssuer;
    let cold: TestIssuer;
    let cluster: TestIssuer;
    let token: string;
    let githubApi: FakeGitHub;
    const since = new Date(Date.now() - 60_000).toISOString();
    const good = (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.issuer, overrides));
    const get = (path: string, bearer: string | null = token) =>
      broker.request(path, bearer === null ? {} : { headers: { authorization: `Bearer ${bearer}` } });
    /** `audit verify --url` against the broker: its one chain, or on a sharded log every chain and the root checkpoints. */
    const verifyLog = async () => {
      const log = await remoteAuditLog((path, params, authorized = true) =>
        get(`${path}${params === undefined ? '' : `?${params}`}`, authorized ? token : null),
      );
      return 'chains' in log ? verifyShardedAuditLog(log) : verifyAuditLog(log);
    };
    /** The parameter naming the chain that holds record `id`: none on a one-chain log, `shard=N&` on a sharded one. */
    const chainOf = async (id: string): Promise<string> => {
      const listed = await get('/v1/audit/shards');
      if (listed.status === 404) return '';
      for (const { shard } of ((await listed.json()) as { shards: { shard: string }[] }).shards) {
        if ((await (await get(`/v1/audit/export?shard=${shard}`)).text()).includes(id)) return `shard=${shard}&`;
      }
      throw new Error(`no shard holds record ${id}`);
    };
    const events = async (params: Record<string, string>) => {
      const response = await get(`/v1/audit/events?${new URLSearchParams({ since, ...params })}`);
      expect(response.status).toBe(200);
      return (await response.json()) as { events: AuditRecordJson[]; next_cursor?: string };
    };
    const signIn = postSignInForm;
    /** A keyway token for the broker itself bound to `key` (DPoP), for the person `sub` with `scope`. */
    const dpopOperatorToken = async (key: DpopKey, sub: string, scope: string) => {
      const exchanged = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await personToken(people, broker.issuer, sub), { audience: broker.issuer, scope }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`) },
      });
      const body = (await exchanged.json()) as Record<string, unknown>;
      expect(exchanged.status, JSON.stringify(body)).toBe(200);
      return body['access_token'] as string;
    };
    /** The record the text of a sign-in page names ("The refusal is audit event …"), as the audit API finds it by its reason code. */
    const recordNamedBy = async (page: string, reason: Reason) => {
      const id = /The refusal is audit event ([0-9A-Z]{26})\./.exec(page)?.[1];
      expect(id).toBeTypeOf('string');
      const record = (await events({ reason, limit: '500' })).events.find((event) => event.id === id);
      expect(record).toMatchObject({ reason, decision: 'denied' });
      return record as AuditRecordJson;
    };

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'audit-gh');
      generic = freshIssuer(issuerBase(), 'audit-oidc');
      people = freshIssuer(issuerBase(), 'people');
      cold = freshIssuer(issuerBase(), 'cold');
      cluster = freshIssuer(issuerBase(), 'audit-k8s');
      await cold.settings({ down: true });
      githubApi = await FakeGitHub.create(githubBase());
      await githubApi.install(ACME_INSTALLATION);
      broker = await start(
        {
          ...suitePolicies(github, generic),
          ...githubPolicies(github),
          ...cloudPolicies(github),
          ...auditorPolicies(people, HARNESS_ISSUER),
          // A token a policy grants for the page's own audience: still not a session.
          'auditors/page-audience.yaml': operatorPolicy(people, `${HARNESS_ISSUER}/audit`, 'mallory@acme.dev', ['audit:read', 'policy:explain']),
          'cold/service.yaml': `version: 1\nissuer: "${cold.url}"\nmatch: { sub: svc-cold }\ngrant: { audience: https://cold.example }\n`,
          'once/service.yaml': `version: 1\nissuer: "${generic.url}"\nsingle_use: true\nmatch: { sub: svc-once }\ngrant: { audience: https://once.example }\n`,
          'dpop/service.yaml': `version: 1\nissuer: "${generic.url}"\nmatch: { sub: svc-dpop }\ngrant: { audience: https://dpop.example, require_dpop: true }\n`,
          'cluster/ci.yaml': `version: 1\nissuer: { kind: kubernetes, url: "${cluster.url}" }\nmatch:\n  /kubernetes.io/namespace: ci\n  /kubernetes.io/serviceaccount/uid: ${SERVICE_ACCOUNT_UID}\ngrant: { audience: https://cluster.example }\n`,
        },
        { settings: { ...githubApi.settings, ...ORGANIZATION_PERMISSIONS_SETTING } },
      );
      expect(broker.issuer).toBe(HARNESS_ISSUER);
      token = await auditorToken(broker, people);
    });
    afterAll(() => broker.close());

    describe('who may read', () => {
      it.each(PROTECTED)('%s answers 401 without a bearer token, and for a Basic credential', async (path) => {
        const none = await get(path, null);
        expect(none.status).toBe(401);
        expect(none.headers.get('www-authenticate')).toBe('Bearer');
        const basic = await broker.request(path, { headers: { authorization: 'Basic YWxpY2U6cGFzcw==' } });
        expect(basic.status).toBe(401);
      });

      it.each(PROTECTED)('%s answers 401 to tokens that are not keyway tokens for this broker', async (path) => {
        const deploy = (await postToken(broker, exchangeForm(await good()))).body['access_token'] as string;
        const foreignRing = await KeyRing.from([await generateSigningKey(Date.now())]);
        const grant = {
          policy: { id: 'auditors/alice' } as Policy,
          audiences: [broker.issuer],
          scopes: ['audit:read'],
          ttlSeconds: 300,
          subject: 'mallory',
          claims: {},
        } satisfies IssuedGrant;
        const forged = (
          await mintAccessToken({ issuer: broker.issuer, key: foreignRing.signing, grant, source: { iss: people.url, sub: 'mallory' }, now: Date.now() })
        ).token;
        const [header, , signature] = token.split('.');
        const claims = { ...decodeJwt(token), scope: 'audit:read admin' };
        const tampered = `${header}.${base64url.encode(JSON.stringify(claims))}.${signature}`;
        for (const bad of ['garbage', deploy, forged, tampered, await personToken(people, broker.issuer, 'alice@acme.dev')]) {
          const response = await get(path, bad);
          expect(response.status).toBe(401);
          expect(await response.json()).toMatchObject({ error: 'invalid_token' });
        }
      });

      it.each(PROTECTED)('%s answers 403 to a token for this broker without audit:read', async (path) => {
        const response = await get(path, await auditorToken(broker, people, 'bob@acme.dev', 'keys:read'));
        expect(response.status).toBe(403);
        expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="audit:read"');
      });

      it('takes a DPoP-bound operator token with each proof once, claimed in the single-use store every process shares; unclaimable, answered 503, never a 500', async () => {
        const key = await DpopKey.generate();
        const access = await dpopOperatorToken(key, 'alice@acme.dev', 'audit:read');
        const ath = await athOf(access);
        // The URL the client addresses: the issuer's, on every runtime, whatever the request's Host header says.
        const url = `${broker.issuer}/v1/audit/alerts`;
        const withProof = (proof: string) => broker.request('/v1/audit/alerts', { headers: { authorization: `DPoP ${access}`, dpop: proof } });
        if (broker.url !== undefined) expect((await withProof(await key.proof('GET', `${broker.url}/v1/audit/alerts`, { ath }))).status).toBe(401);
        const proof = await key.proof('GET', url, { ath });
        expect((await withProof(proof)).status).toBe(200);
        expect((await withProof(proof)).status).toBe(401);
        // A token without the route's scope is refused before its proof is claimed: the same proof is refused for the scope again.
        const bob = await dpopOperatorToken(key, 'bob@acme.dev', 'keys:read');
        const bobsProof = await key.proof('GET', url, { ath: await athOf(bob) });
        for (let attempt = 0; attempt < 2; attempt += 1) {
          expect((await broker.request('/v1/audit/alerts', { headers: { authorization: `DPoP ${bob}`, dpop: bobsProof } })).status).toBe(403);
        }
        await broker.setReplayGuardDown(true);
        try {
          const unclaimable = await withProof(await key.proof('GET', url, { ath }));
          // Whether the proof was used before is unknown: retry, neither admitted nor refused as replayed. (On Node the revocation
          // list lives in the same table, so the revoked-token check before every operator route answers so first; on Workers
          // the proof's claim does.)
          expect(unclaimable.status).toBe(503);
          expect(unclaimable.headers.get('www-authenticate')).toBeNull();
          expect(await unclaimable.json()).toMatchObject({
            error: 'temporarily_unavailable',
            error_description:
              broker.url === undefined ? 'the DPoP proof cannot be checked right now; retry later' : 'the revocation list is unavailable; retry later',
          });
        } finally {
          await broker.setReplayGuardDown(false);
        }
        expect((await withProof(await key.proof('GET', url, { ath }))).status).toBe(200);
      });

      it('the /audit page answers 401 without a sign-in, and a sign-in with a token without audit:read 403', async () => {
        expect((await broker.request('/audit')).status).toBe(401);
        expect((await broker.request('/audit/events/01X')).status).toBe(401);
        const signedIn = await pageCookie(broker, token);
        const session = signedIn.slice(signedIn.indexOf('=') + 1);
        expect((await broker.request('/audit', { headers: { cookie: `keyway_audit=${session}; __Host-keyway_audit=garbage.x.y` } })).status).toBe(401);
        const bob = await auditorToken(broker, people, 'bob@acme.dev', 'keys:read');
        expect((await signInToPage(broker, bob)).status).toBe(403);
        const page = await broker.request('/audit', { headers: { cookie: `__Host-keyway_audit=${session}` } });
        expect(page.status).toBe(200);
        expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(await page.text()).toContain('alice@acme.dev');
      });

      it('the /audit page says a token or session could not be checked while the revocation list is unavailable: 503 to retry, not "not valid"', async () => {
        const cookie = { cookie: await pageCookie(broker, token) };
        const signIn = () => signInToPage(broker, token);
        const signOut = () =>
          broker.request('/audit/sign-out', { method: 'POST', redirect: 'manual', headers: { ...cookie, 'sec-fetch-site': 'same-origin' } });
        await broker.setRevocationListDown(true);
        try {
          for (const unchecked of [await broker.request('/audit', { headers: cookie }), await signIn(), await signOut()]) {
            expect(unchecked.status).toBe(503);
            expect(unchecked.headers.get('retry-after')).toBe('5');
            expect(unchecked.headers.get('set-cookie')).toBeNull();
            const text = await unchecked.text();
            expect(text).toContain('could not be checked');
            expect(text).not.toContain('not valid');
          }
        } finally {
          await broker.setRevocationListDown(false);
        }
        expect((await broker.request('/audit', { headers: cookie })).status).toBe(200);
        expect((await signIn()).status).toBe(303);
      });

      it('publishes signed checkpoints to anyone', async () => {
        const chain = await chainOf((await postToken(broker, exchangeForm(await good()))).body['audit_event_id'] as string);
        await broker.auditUpkeep();
        const latest = await broker.request(`/v1/audit/checkpoints/latest?${chain}`);
        expect(latest.status).toBe(200);
        const checkpoint = (await latest.json()) as Checkpoint;
        const jwks = (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;
        expect(await verifyCheckpoint(checkpoint.jws, createLocalJWKSet(jwks))).toMatchObject({ seq: checkpoint.seq, hash: checkpoint.hash });
        expect(decodeJwt(checkpoint.jws).iss).toBe(broker.issuer);
        const list = (await (await broker.request(`/v1/audit/checkpoints?${chain}after=0&limit=500`)).json()) as { checkpoints: Checkpoint[] };
        expect(list.checkpoints.at(-1)).toEqual(checkpoint);
        expect((await broker.request(`/v1/audit/checkpoints?${chain}limit=0`)).status).toBe(400);
      });
    });

    describe('the /audit sign-in form', () => {
      const MEGABYTE = 1024 * 1024;

      /** A sign-in form that held no token to check: its refusal recorded as a refused credential without one, the form naming the record. */
      const refusedForm = async (page: Response, status: number, problem: string, why: string) => {
        expect(page.status).toBe(status);
        expect(page.headers.get('set-cookie')).toBeNull();
        const text = await page.text();
        expect(text).toContain(problem);
        const record = await recordNamedBy(text, 'operator_token_invalid');
        expect(record).toMatchObject({ detail: `POST /audit/sign-in: ${why}` });
        expect(record).not.toHaveProperty('subject_token');
        expect(record).not.toHaveProperty('subject');
      };

      it('refuses a form over 32 KiB with 413, declared or streamed, and goes on signing people in', async () => {
        const tooLarge = ['larger than 32768 bytes', 'the form is larger than 32768 bytes'] as const;
        // Its connection is not reused: the Node server stops draining the unread rest and destroys the socket.
        const declared = await signIn(broker, `token=${'a'.repeat(MEGABYTE)}`, { connection: 'close' });
        expect(declared.headers.get('content-type')).toMatch(/^text\/html/);
        await refusedForm(declared, 413, ...tooLarge);
        const chunks = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('token='));
            for (let sent = 0; sent < MEGABYTE; sent += 8192) controller.enqueue(new Uint8Array(8192).fill(0x61));
            controller.close();
          },
        });
        await refusedForm(await signIn(broker, chunks, { connection: 'close' }), 413, ...tooLarge);
        // Under the limit, a token too long to be one is refused as before.
        const long = await signIn(broker, new URLSearchParams({ token: 'a'.repeat(20_000) }));
        await refusedForm(long, 400, 'Paste an access token', 'the token is longer than 16384 characters');

        const signedIn = await signIn(broker, new URLSearchParams({ token }));
        expect(signedIn.status).toBe(303);
        expect(signedIn.headers.get('location')).toBe('/audit');
      });

      it('takes the form multipart too, and answers one it cannot parse with 400 and the form, not a 500', async () => {
        const form = new FormData();
        form.set('token', token);
        const multipart = await broker.request('/audit/sign-in', {
          method: 'POST',
          body: form,
          redirect: 'manual',
          headers: { 'sec-fetch-site': 'same-origin' },
        });
        expect(multipart.status).toBe(303);
        for (const contentType of ['multipart/form-data; boundary=x', 'multipart/form-data']) {
          const malformed = await signIn(broker, '--x\r\nnot a part', { 'content-type': contentType });
          await refusedForm(malformed, 400, 'Paste an access token', 'the form could not be read');
        }
      });

      it('answers a form without a token, or with an empty one, with 400 and the form, and records it as a refused credential', async () => {
        for (const empty of [new URLSearchParams({ token: '  ' }), new URLSearchParams({ other: 'x' })]) {
          await refusedForm(await signIn(broker, empty), 400, 'Paste an access token', 'the form holds no token');
        }
      });

      it('on an https broker, keeps the session in a __Host- cookie that the next page reads, and sign-out deletes it', async () => {
        const signedIn = await signIn(broker, new URLSearchParams({ token }));
        expect(signedIn.status).toBe(303);
        const set = signedIn.headers.get('set-cookie') ?? '';
        expect(set).toMatch(/^__Host-keyway_audit=[^;]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
        const cookie = set.slice(0, set.indexOf(';'));
        const page = await broker.request('/audit', { headers: { cookie } });
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('alice@acme.dev');
        const signedOut = await broker.request('/audit/sign-out', { method: 'POST', redirect: 'manual', headers: { cookie, 'sec-fetch-site': 'same-origin' } });
        expect(signedOut.status).toBe(303);
        expect(signedOut.headers.get('set-cookie')).toMatch(/^__Host-keyway_audit=; Max-Age=0; Path=\/; Secure/);
      });

      it("keeps a session of the broker's own in the cookie, never the pasted token: one no operator API takes, nor the page from anywhere but its cookie", async () => {
        const cookie = await pageCookie(broker, token);
        const session = cookie.slice(cookie.indexOf('=') + 1);
        expect(session).not.toBe(token);
        const pasted = decodeJwt(token);
        const claims = decodeJwt(session);
        expect(claims).toMatchObject({ iss: broker.issuer, aud: `${broker.issuer}/audit`, sub: pasted.sub, src_jti: pasted.jti, scope: 'audit:read' });
        expect(claims.jti).not.toBe(pasted.jti);
        // No longer than the pasted token (ten minutes, its policy's ttl), nor than the page's bound.
        expect(claims.exp).toBeLessThanOrEqual(pasted.exp ?? 0);
        expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBeLessThanOrEqual(8 * 3600);
        // A copied cookie reads no operator API: refused as a Bearer token, and recorded naming no one (it did not verify there).
        for (const path of ['/v1/audit/events', '/v1/inventory', '/v1/audit/alerts']) {
          const refused = await get(path, session);
          expect(refused.status, path).toBe(401);
          expect(await refused.json()).toMatchObject({ error: 'invalid_token', audit_event_id: expect.any(String) });
        }
        // The page takes it from its cookie alone: not pasted into the form, nor in an Authorization header.
        expect((await signIn(broker, new URLSearchParams({ token: session }))).status).toBe(401);
        expect((await broker.request('/audit', { headers: { authorization: `Bearer ${session}` } })).status).toBe(401);
        // Nor does it take an operator token as its cookie, as it did before sessions, nor a token a policy granted for its audience.
        expect((await broker.request('/audit', { headers: { cookie: `__Host-keyway_audit=${token}` } })).status).toBe(401);
        const lookalike = await postToken(
          broker,
          exchangeForm(await personToken(people, broker.issuer, 'mallory@acme.dev'), { audience: `${broker.issuer}/audit`, scope: 'audit:read' }),
        );
        expect(decodeJwt(lookalike.body['access_token'] as string)).toMatchObject({ aud: `${broker.issuer}/audit`, scope: 'audit:read' });
        const refusedLookalike = await broker.request('/audit', { headers: { cookie: `__Host-keyway_audit=${String(lookalike.body['access_token'])}` } });
        expect(refusedLookalike.status).toBe(401);
        expect((await broker.request('/audit', { headers: { cookie } })).status).toBe(200);
      });

      it('ends a session after 8 hours (PAGE_SESSION_MAX_SECONDS) when the token it was signed in with lives longer', async () => {
        const long = `version: 1\nissuer: "${people.url}"\nmatch: { sub: alice@acme.dev }\ngrant: { audience: ${HARNESS_ISSUER}, scopes: [audit:read], ttl: 12h }\n`;
        const longer = await start({ 'auditors/alice.yaml': long }, { settings: { KEYWAY_MAX_TTL_SECONDS: String(12 * 3600) }, ownState: true });
        try {
          const pasted = decodeJwt(await auditorToken(longer, people));
          expect((pasted.exp ?? 0) - (pasted.iat ?? 0)).toBe(12 * 3600);
          const cookie = await pageCookie(longer, await auditorToken(longer, people));
          const session = decodeJwt(cookie.slice(cookie.indexOf('=') + 1));
          expect((session.exp ?? 0) - (session.iat ?? 0)).toBe(8 * 3600);
        } finally {
          await longer.close();
        }
      });

      it('records each sign-in (the pasted token by its hash and jti, the session it started) and each sign-out (a revocation); a signed-out cookie is refused, and recorded', async () => {
        const cookie = await pageCookie(broker, token);
        const session = decodeJwt(cookie.slice(cookie.indexOf('=') + 1));
        const pasted = decodeJwt(token);
        const [signedIn] = (await events({ jti: String(session.jti) })).events;
        expect(signedIn).toMatchObject({
          decision: 'granted',
          reason: 'audit_page_signed_in',
          issuer: broker.issuer,
          subject: pasted.sub,
          subject_token: { sha256: sha256Hex(token), jti: pasted.jti },
          issued: { jti: session.jti, sub: pasted.sub, aud: [`${broker.issuer}/audit`], scope: ['audit:read'], exp: session.exp },
        });
        expect(JSON.stringify(signedIn)).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);

        const signOut = () => broker.request('/audit/sign-out', { method: 'POST', redirect: 'manual', headers: { cookie, 'sec-fetch-site': 'same-origin' } });
        const signedOut = await signOut();
        expect(signedOut.status).toBe(303);
        expect(signedOut.headers.get('set-cookie')).toMatch(/^__Host-keyway_audit=; Max-Age=0/);
        const revoked = (await events({ reason: 'token_revoked', jti: String(session.jti) })).events;
        expect(revoked).toEqual([
          expect.objectContaining({
            decision: 'granted',
            subject: pasted.sub,
            subject_token: expect.objectContaining({ jti: session.jti }),
            detail: `revoked by operator ${pasted.sub}: signed out of /audit`,
          }),
        ]);

        // The old cookie, replayed: refused, and the refusal recorded as every refused credential is, naming its operator.
        const replayed = await broker.request('/audit', { headers: { cookie } });
        expect(replayed.status).toBe(401);
        const id = /The refusal is audit event ([0-9A-Z]{26})\./.exec(await replayed.text())?.[1];
        const refusal = (await events({ reason: 'operator_token_invalid', limit: '500' })).events.find((event) => event.id === id);
        expect(refusal).toMatchObject({ subject: pasted.sub, detail: 'GET /audit: the session was signed out of', subject_token: { jti: session.jti } });
        // Signing out of it again ends nothing more: refused, the cookie deleted.
        const again = await signOut();
        expect(again.status).toBe(401);
        expect(again.headers.get('set-cookie')).toMatch(/^__Host-keyway_audit=; Max-Age=0/);
        expect((await events({ reason: 'token_revoked', jti: String(session.jti) })).events).toHaveLength(1);
      });

      it('refuses a form post from another site, or one that names no origin, with 403: not a 500, and logs each as refused, not as an unhandled error', async () => {
        const logged: string[] = [];
        const keep = (message: string) => void logged.push(message);
        const watched = await start(auditorPolicies(people, HARNESS_ISSUER), { log: { info: keep, warn: keep, error: keep }, ownState: true });
        try {
          for (const path of ['/audit/sign-in', '/audit/sign-out']) {
            const origins: Record<string, string>[] = [{}, { origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }];
            for (const origin of origins) {
              const refused = await watched.request(path, {
                method: 'POST',
                body: 'token=garbage',
                redirect: 'manual',
                headers: { 'content-type': 'application/x-www-form-urlencoded', ...origin },
              });
              expect(refused.status).toBe(403);
              expect(await refused.text()).toBe('Forbidden');
              expect(refused.headers.get('cache-control')).toBe('no-store');
              expect(refused.headers.get('content-security-policy')).toContain("default-src 'none'");
            }
          }
          // The page's own form passes.
          expect((await signIn(watched, 'token=garbage')).status).toBe(401);
          expect(logged.filter((message) => message === 'unhandled error')).toEqual([]);
          expect(logged.filter((message) => message === 'audit page form refused: not from the page itself')).toHaveLength(6);
        } finally {
          await watched.close();
        }
      });

      it('is shed by the per-client and global rate limits of /token before its body is read: 429 with Retry-After', async () => {
        const limited = await start(auditorPolicies(people, HARNESS_ISSUER), {
          settings: { KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '3' },
          ownState: true,
        });
        try {
          const statuses = [];
          for (let i = 0; i < 3; i += 1) statuses.push((await signIn(limited, 'token=garbage')).status);
          expect(statuses).toEqual([401, 401, 401]);
          // Over the body limit too: the rate limit answers first, without reading it.
          const shed = await signIn(limited, `token=${'a'.repeat(MEGABYTE)}`, { connection: 'close' });
          expect(shed.status).toBe(429);
          expect(shed.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(shed.headers.get('content-type')).toMatch(/^text\/html/);
          expect(await shed.text()).toContain('global rate limit');
          // The sign-in spent the budget /token draws on.
          expect((await postToken(limited, exchangeForm(await personToken(people, limited.issuer, 'alice@acme.dev')))).status).toBe(429);
        } finally {
          await limited.close();
        }
      });

      it("sheds the page's cookie checks by /token's per-client limit before the signature is checked (429 with Retry-After), never by the global one", async () => {
        const forged = `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'k' }))}.${base64url.encode('{}')}.${base64url.encode('x')}`;
        // One client: on Workers its address is the CF-Connecting-IP Cloudflare sets; on Node the socket's (the header is not read).
        const page = (harness: BrokerClient, cookie = `__Host-keyway_audit=${forged}`) =>
          harness.request('/audit', { headers: { cookie, 'cf-connecting-ip': '203.0.113.10' } });
        const limited = await start(auditorPolicies(people, HARNESS_ISSUER), {
          settings: { KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '3' },
          ownState: true,
        });
        try {
          const statuses = [];
          for (let i = 0; i < 3; i += 1) statuses.push((await page(limited)).status);
          expect(statuses).toEqual([401, 401, 401]);
          const shed = await page(limited);
          expect(shed.status).toBe(429);
          expect(shed.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(shed.headers.get('content-type')).toMatch(/^text\/html/);
          expect(await shed.text()).toContain('client rate limit');
          // A request without a cookie costs no check: it is the sign-in form, as ever.
          expect((await page(limited, 'other=1')).status).toBe(401);
        } finally {
          await limited.close();
        }
        // A flood of forged cookies does not spend the global budget: exchanges go on.
        const global = await start(auditorPolicies(people, HARNESS_ISSUER), {
          settings: { KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '3' },
          ownState: true,
        });
        try {
          for (let i = 0; i < 5; i += 1) expect((await page(global)).status).toBe(401);
          expect((await postToken(global, exchangeForm(await personToken(people, global.issuer, 'alice@acme.dev')))).status).toBe(200);
        } finally {
          await global.close();
        }
      });

      it("sheds the operator APIs under /v1 by /token's per-client limit before any token is checked (429, no record), never by the global one", async () => {
        // One client: on Workers its address is the CF-Connecting-IP Cloudflare sets; on Node the socket's (the header is not read).
        const query = (broker: typeof limited) =>
          broker.request('/v1/audit/events', { headers: { authorization: 'Bearer not.a.token', 'cf-connecting-ip': '203.0.113.9' } });
        const limited = await start(auditorPolicies(people, HARNESS_ISSUER), {
          settings: { KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '3' },
          ownState: true,
        });
        try {
          const statuses = [];
          for (let i = 0; i < 3; i += 1) statuses.push((await query(limited)).status);
          expect(statuses).toEqual([401, 401, 401]);
          const shed = await query(limited);
          expect(shed.status).toBe(429);
          expect(shed.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(shed.headers.get('www-authenticate')).toBeNull();
          expect(await shed.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('client rate limit') });
          // A flood shed leaves no rows behind: the records are the three refusals answered before it.
          expect((await limited.recentAuditEvents()).map((event) => event.reason)).toEqual(Array(3).fill('operator_token_invalid'));
        } finally {
          await limited.close();
        }
        // A flood of the operator APIs does not spend the global budget: exchanges go on, and so would an operator elsewhere.
        const global = await start(auditorPolicies(people, HARNESS_ISSUER), {
          settings: { KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '3' },
          ownState: true,
        });
        try {
          for (let i = 0; i < 5; i += 1) expect((await query(global)).status).toBe(401);
          expect((await postToken(global, exchangeForm(await personToken(people, global.issuer, 'alice@acme.dev')))).status).toBe(200);
        } finally {
          await global.close();
        }
      });
    });

    describe('refused operator credentials leave a record', () => {
      /** The record an answer names, as the audit API finds it by its reason code. */
      const recordOf = async (response: Response, reason: Reason) => {
        const id = ((await response.json()) as Record<string, unknown>)['audit_event_id'];
        expect(id).toBeTypeOf('string');
        const record = (await events({ reason, limit: '500' })).events.find((event) => event.id === id);
        expect(record).toMatchObject({ reason, decision: 'denied' });
        return record as AuditRecordJson;
      };

      it('records an operator API refusal of a token that is not valid, or of none, with a clear reason and the token by its hash only', async () => {
        const agent = `prober-${crypto.randomUUID()}`;
        // A person's identity token, signed by its issuer but not by the broker.
        const forged = await personToken(people, broker.issuer, 'alice@acme.dev');
        const refused = await broker.request('/v1/audit/events', { headers: { authorization: `Bearer ${forged}`, 'user-agent': agent } });
        expect(refused.status).toBe(401);
        const record = await recordOf(refused, 'operator_token_invalid');
        expect(record).toMatchObject({
          request: { user_agent: agent },
          subject_token: { sha256: sha256Hex(forged), claimed_iss: people.url, claimed_sub: 'alice@acme.dev' },
          detail: expect.stringMatching(/^GET \/v1\/audit\/events: /),
        });
        // A token that did not verify names nobody: the operator it claims is in subject_token alone.
        expect(record).not.toHaveProperty('issuer');
        expect(record).not.toHaveProperty('subject');
        expect(JSON.stringify(record)).not.toContain(forged.split('.')[2]);

        const none = await broker.request('/v1/inventory', { headers: { 'user-agent': agent } });
        expect(none.status).toBe(401);
        expect(none.headers.get('www-authenticate')).toBe('Bearer');
        const unauthenticated = await recordOf(none, 'operator_token_invalid');
        expect(unauthenticated).toMatchObject({ detail: expect.stringMatching(/^GET \/v1\/inventory: no Bearer or DPoP/) });
        expect(unauthenticated).not.toHaveProperty('subject_token');
      });

      it('records an operator API refusal of a DPoP proof as a token not valid, naming nobody: only a missing scope names the operator', async () => {
        const key = await DpopKey.generate();
        const bound = await dpopOperatorToken(key, 'alice@acme.dev', 'audit:read');
        const elsewhere = await key.proof('GET', `${broker.issuer}/v1/audit/alerts`, { ath: await athOf(bound) });
        const refused = await broker.request('/v1/audit/stats', { headers: { authorization: `DPoP ${bound}`, dpop: elsewhere } });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
        const record = await recordOf(refused, 'operator_token_invalid');
        expect(record).toMatchObject({
          subject_token: { sha256: sha256Hex(bound) },
          detail: expect.stringMatching(/^GET \/v1\/audit\/stats: /),
        });
        expect(record).not.toHaveProperty('subject');
      });

      it('refuses an operator credential as ever when its record cannot be written: 401 naming no record, never a 500', async () => {
        await broker.tamper("CREATE TRIGGER operator_audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'down for the test'); END", []);
        let refused: Response;
        try {
          refused = await get('/v1/audit/alerts', 'not-a-token');
        } finally {
          // Named on audit_events so the Workers harness runs it on every audit shard, as it ran the CREATE.
          await broker.tamper('DROP TRIGGER operator_audit_down /* audit_events */', []);
        }
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
        expect(await refused.json()).toEqual({ error: 'invalid_token', error_description: 'the access token is not valid' });
      });

      it('records an operator API refusal of a token without the scope, naming its operator', async () => {
        const bob = await auditorToken(broker, people, 'bob@acme.dev', 'keys:read');
        const refused = await get('/v1/audit/stats', bob);
        expect(refused.status).toBe(403);
        expect(await recordOf(refused, 'operator_scope_missing')).toMatchObject({
          issuer: broker.issuer,
          subject: decodeJwt(bob).sub,
          subject_token: { sha256: sha256Hex(bob), jti: decodeJwt(bob).jti },
          detail: 'GET /v1/audit/stats: the token lacks scope audit:read',
        });
      });

      it('records a failed /audit sign-in, and one without audit:read naming its operator; the form names the record', async () => {
        const paste = (pasted: string) => signIn(broker, new URLSearchParams({ token: pasted }));
        const wrong = `${token.slice(0, -4)}AAAA`;
        const refused = await paste(wrong);
        expect(refused.status).toBe(401);
        expect(refused.headers.get('set-cookie')).toBeNull();
        const record = await recordNamedBy(await refused.text(), 'operator_token_invalid');
        expect(record).toMatchObject({ subject_token: { sha256: sha256Hex(wrong) }, detail: expect.stringMatching(/^POST \/audit\/sign-in: /) });
        expect(record).not.toHaveProperty('subject');

        const bob = await auditorToken(broker, people, 'bob@acme.dev', 'keys:read');
        const unscoped = await paste(bob);
        expect(unscoped.status).toBe(403);
        expect(await recordNamedBy(await unscoped.text(), 'operator_scope_missing')).toMatchObject({
          issuer: broker.issuer,
          subject: decodeJwt(bob).sub,
          detail: 'POST /audit/sign-in: the token lacks scope audit:read',
        });
      });
      it('keeps a pasted secret that is no JWT by its length alone: neither it nor its SHA-256 is in a record or the export', async () => {
        // A passphrase pasted by mistake: an unsalted SHA-256 of it, in a log auditors export, is reversed with a dictionary.
        // Its dots give it the form of a compact JWS, which /token takes as far as decoding it.
        const secret = `correct.horse.battery-${crypto.randomUUID().slice(0, 8)}`;
        const kept = { length: secret.length };
        const page = await signIn(broker, new URLSearchParams({ token: secret }));
        expect(page.status).toBe(401);
        const signedIn = await recordNamedBy(await page.text(), 'operator_token_invalid');
        expect(signedIn.subject_token).toEqual(kept);
        // As a Bearer token of an operator API, and as /token's subject or actor token.
        const bearer = await get('/v1/audit/events', secret);
        expect(bearer.status).toBe(401);
        expect((await recordOf(bearer, 'operator_token_invalid')).subject_token).toEqual(kept);
        const subject = await postToken(broker, exchangeForm(secret));
        expect((await broker.auditEvent(subject.body['audit_event_id'] as string))?.subject_token).toEqual(kept);
        const actor = await postToken(broker, exchangeForm(await good(), { actor_token: secret, actor_token_type: ID_TOKEN }));
        expect((await broker.auditEvent(actor.body['audit_event_id'] as string))?.actor).toEqual(kept);

        const exported = [
          await (await get(`/v1/audit/export?${new URLSearchParams({ since })}`)).text(),
          await (await get(`/v1/audit/export?${new URLSearchParams({ since, format: 'csv' })}`)).text(),
        ].join('\n');
        for (const id of [signedIn.id, subject.body['audit_event_id'], actor.body['audit_event_id']]) expect(exported).toContain(id);
        expect(exported).not.toContain(secret);
        expect(exported).not.toContain(sha256Hex(secret));
      });
      it('shows a pasted password by its length where its hash would be: on the /audit page and in the CSV export', async () => {
        const password = `hunter2-${crypto.randomUUID().slice(0, 8)}`;
        const refused = await signIn(broker, new URLSearchParams({ token: password }));
        expect(refused.status).toBe(401);
        const { id } = await recordNamedBy(await refused.text(), 'operator_token_invalid');

        const page = await broker.request(`/audit/events/${id}`, { headers: { cookie: await pageCookie(broker, token) } });
        const html = await page.text();
        expect(page.status, html).toBe(200);
        expect(html).toContain('<dd data-field="subject token sha256">— (kept by its length)</dd>');
        expect(html).toContain(`<dd data-field="subject token length">${password.length} characters: not shaped as a JWT, so kept without a hash</dd>`);

        const csv = await get(`/v1/audit/export?${new URLSearchParams({ since, reason: 'operator_token_invalid', format: 'csv' })}`);
        const [header = '', ...rows] = (await csv.text()).trim().split('\r\n');
        const cells = (rows.find((line) => line.includes(id)) ?? '').split(',');
        // No cell up to the hash's holds a comma (the password claims nothing); the length is the last, after the chain's hash.
        expect(cells[header.split(',').indexOf('subject_token_sha256')]).toBe('');
        expect(header.endsWith(',hash,subject_token_length')).toBe(true);
        expect(cells.at(-1)).toBe(String(password.length));
      });
    });

    describe('what auditors read', () => {
      it('finds who got a production token, from which commit, under which policy, and who was refused', async () => {
        const granted = await postToken(broker, exchangeForm(await good({ sha: 'c0ffee', sub: 'repo:acme/api:environment:production:find' })));
        const refused = await postToken(broker, exchangeForm(await good({ ref: 'refs/heads/feature', sub: 'repo:acme/api:environment:production:find' })));
        const issued = decodeJwt(granted.body['access_token'] as string);

        const found = await events({ subject: 'repo:acme/api:environment:production:find' });
        expect(found.events.map((event) => event.id)).toEqual([refused.body['audit_event_id'], granted.body['audit_event_id']]);
        const [refusal, grant] = found.events;
        expect(grant).toMatchObject({
          decision: 'granted',
          policy: { granted_by: 'deploy/production' },
          claims: { sha: 'c0ffee', environment: 'production' },
          issued: { jti: issued.jti },
        });
        expect(grant?.chain.seq).toBeTypeOf('number');
        expect(refusal).toMatchObject({ decision: 'denied', reason: 'no_policy_matched' });

        expect((await events({ jti: String(issued.jti) })).events.map((event) => event.id)).toEqual([granted.body['audit_event_id']]);
        const byPolicy = await events({ policy: 'deploy/production', decision: 'granted', repository: 'acme/api' });
        expect(byPolicy.events.length).toBeGreaterThan(0);
        expect(byPolicy.events.every((event) => event.policy?.granted_by === 'deploy/production' && event.decision === 'granted')).toBe(true);
        expect((await events({ subject: 'repo:acme/api:environment:production:find', until: since })).events).toEqual([]);

        const one = await get(`/v1/audit/events/${granted.body['audit_event_id']}`);
        expect(one.status).toBe(200);
        expect(await one.json()).toEqual(grant);
        expect((await get('/v1/audit/events/01NOSUCHEVENT')).status).toBe(404);
      });

      it('pages with a cursor, newest first', async () => {
        const sub = `repo:acme/api:environment:production:page-${crypto.randomUUID()}`;
        const ids = [];
        for (let index = 0; index < 3; index += 1) ids.push((await postToken(broker, exchangeForm(await good({ sub })))).body['audit_event_id']);
        const first = await events({ subject: sub, limit: '2' });
        expect(first.events.map((event) => event.id)).toEqual([ids[2], ids[1]]);
        const second = await events({ subject: sub, limit: '2', cursor: first.next_cursor as string });
        expect(second.events.map((event) => event.id)).toEqual([ids[0]]);
        expect(second.next_cursor).toBeUndefined();
      });

      it.each([
        ['decision=maybe', /decision/],
        ['reason=nope', /reason/],
        ['since=last%20tuesday', /since/],
        ['limit=0', /limit/],
        ['limit=501', /limit/],
        ['cursor=abc', /cursor/],
        ['subject=a&subject=b', /subject/],
      ])('refuses the filter %s with 400 invalid_request', async (query, message) => {
        const response = await get(`/v1/audit/events?${query}`);
        expect(response.status).toBe(400);
        const body = (await response.json()) as { error: string; error_description: string };
        expect(body.error).toBe('invalid_request');
        expect(body.error_description).toMatch(message);
      });

      it('exports NDJSON that verifies against the chain and the signed checkpoints, and CSV safe for spreadsheets', async () => {
        const sub = `=HYPERLINK("https://evil.example","x")`;
        await postToken(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer, { sub }), { key: 'foreign' })));
        await broker.auditUpkeep();

        const ndjson = await get('/v1/audit/export');
        expect(ndjson.status).toBe(200);
        expect(ndjson.headers.get('content-type')).toBe('application/x-ndjson');
        const lines = (await ndjson.text()).trim().split('\n');
        const ids = lines.map((line) => fromRecordJson(JSON.parse(line) as AuditRecordJson).event.id);
        // In time order (ULIDs), every record once, whether the log is one chain or the shards' chains merged.
        expect(ids).toEqual([...new Set(ids)].sort());
        const report = await verifyLog();
        expect(report).toMatchObject({ ok: true });
        const chains = 'chains' in report ? report.chains : [report];
        expect(chains.reduce((sum, chain) => sum + chain.records, 0)).toBe(ids.length);
        expect(chains.reduce((sum, chain) => sum + chain.checkpoints, 0)).toBeGreaterThan(0);

        const csv = await get(`/v1/audit/export?format=csv&since=${encodeURIComponent(since)}&reason=signature_invalid`);
        expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
        const rows = (await csv.text()).trim().split('\r\n');
        expect(rows[0]).toMatch(/^seq,id,time,decision,reason,issuer,subject,/);
        const row = rows.find((line) => line.includes('HYPERLINK'));
        expect(row).toContain(`"'=HYPERLINK(""https://evil.example"",""x"")"`);
        expect((await get('/v1/audit/export?format=xml')).status).toBe(400);
      });

      it("exports NDJSON whose lines no line reader splits: a caller's U+2028, U+2029 or NEL is escaped, in the log's export and the inventory's", async () => {
        // A verified subject the policies do not match: refused, and recorded with the subject as the token proved it.
        const sub = `svc-lines-${crypto.randomUUID()}\u2028{"decision":"granted"}\u2029x\u0085y`;
        const iat = Math.floor(Date.now() / 1000);
        const refused = await postToken(broker, exchangeForm(await generic.sign({ iss: generic.url, aud: broker.issuer, sub, iat, exp: iat + 300 })));
        expect(refused.body['audit_event_id']).toBeTypeOf('string');
        /** Where a line reader may end a line, as Python's str.splitlines() does (of its C0 ones, JSON leaves none raw but CR and LF). */
        const lines = async (path: string) => {
          const response = await get(path);
          expect(response.status).toBe(200);
          const text = await response.text();
          expect(text.endsWith('\n')).toBe(true);
          return text
            .slice(0, -1)
            .split(/\r\n|[\n\r\x85\u2028\u2029]/)
            .map((line) => JSON.parse(line) as Record<string, unknown>);
        };
        const exported = await lines(`/v1/audit/export?${new URLSearchParams({ since, subject: sub })}`);
        expect(exported.map((record) => [record['id'], record['subject']])).toEqual([[refused.body['audit_event_id'], sub]]);
        const identities = await lines('/v1/inventory?format=ndjson');
        expect(identities.filter((identity) => identity['subject'] === sub)).toHaveLength(1);
      });

      it('verify sees the index columns the queries read, in the export: a grant turned into a denial there is tampering, named by its record', async () => {
        const sub = `repo:acme/api:environment:production:index-${crypto.randomUUID()}`;
        const granted = await postToken(broker, exchangeForm(await good({ sub })));
        const id = granted.body['audit_event_id'] as string;
        const found = async (decision: string) => (await events({ subject: sub, decision })).events.map((event) => event.id);
        const exported = verifyLog;
        expect(await found('granted')).toEqual([id]);
        const seq = (await events({ subject: sub })).events[0]?.chain.seq;

        await broker.tamper("UPDATE audit_events SET decision = 'denied', reason = 'no_policy_matched' WHERE id = ?", [id]);
        try {
          // What the edit does: auditors asking who was granted no longer see it…
          expect(await found('granted')).toEqual([]);
          expect(await found('denied')).toEqual([id]);
          // …and what verify says of it.
          expect(await exported()).toMatchObject({
            ok: false,
            problem: {
              kind: 'index_mismatch',
              seq,
              id,
              message: expect.stringContaining('its decision column holds "denied", the hashed record says "granted"'),
            },
          });
        } finally {
          await broker.tamper("UPDATE audit_events SET decision = 'granted', reason = 'granted' WHERE id = ?", [id]);
        }
        expect(await exported()).toMatchObject({ ok: true });
      });

      it('counts exchanges by decision, policy and repository over time buckets', async () => {
        const before = (await (await get(`/v1/audit/stats?since=${encodeURIComponent(since)}&bucket=minute`)).json()) as { totals: Record<string, number> };
        await postToken(broker, exchangeForm(await good()));
        await postToken(broker, exchangeForm(await good({ ref: 'refs/heads/other' })));
        const response = await get(`/v1/audit/stats?since=${encodeURIComponent(since)}&bucket=minute`);
        expect(response.status).toBe(200);
        const stats = (await response.json()) as {
          totals: Record<string, number>;
          series: { counts: Record<string, number> }[];
          by_policy: { policy: string }[];
          by_repository: { repository: string }[];
        };
        expect(stats.totals['granted']).toBe((before.totals['granted'] ?? 0) + 1);
        expect(stats.totals['denied']).toBe((before.totals['denied'] ?? 0) + 1);
        expect(stats.series.reduce((sum, bucket) => sum + (bucket.counts['granted'] ?? 0), 0)).toBe(stats.totals['granted']);
        expect(stats.by_policy.map((row) => row.policy)).toContain('deploy/production');
        expect(stats.by_repository.map((row) => row.repository)).toContain('acme/api');
        expect((await get('/v1/audit/stats?bucket=minute&since=30d')).status).toBe(400);
      });

      it('takes a search from the start of time at /audit as /v1/audit/events does, and charts it from its oldest record, saying so', async () => {
        const id = (await postToken(broker, exchangeForm(await good()))).body['audit_event_id'] as string;
        const listed = await get('/v1/audit/events?since=1970-01-01');
        expect(listed.status).toBe(200);
        const cookie = await pageCookie(broker, token);
        const page = (search: string) => broker.request(`/audit?${search}`, { headers: { cookie } });
        const everything = await page('since=1970-01-01');
        const html = await everything.text();
        expect(everything.status, html).toBe(200);
        expect(html).toContain(`data-event-id="${id}"`);
        const start = /data-testid="chart-start">The chart starts at the oldest record the search finds, ([^:]+:[^:]+:[^:]+Z):/.exec(html)?.[1];
        // The minute of the oldest record: this suite's own, minutes old, never 1970.
        expect(Date.parse(start ?? '') % 60_000).toBe(0);
        expect(Date.now() - Date.parse(start ?? '')).toBeLessThan(60 * 60_000);
        expect(html).toContain(`${start} to `);
        // A search that finds nothing that far back is charted over the last 1000 days, the most the chart draws.
        const nothing = await page('since=1970-01-01&repository=nobody%2Fnothing');
        const empty = await nothing.text();
        expect(nothing.status, empty).toBe(200);
        expect(empty).toContain('The chart shows the last 1000 days of the search, the most it draws');
      });
    });

    describe('every reason code lands in the log, findable by its code', () => {
      const post = (body: BodyInit, contentType = 'application/x-www-form-urlencoded') =>
        broker.request('/token', { method: 'POST', body, headers: { 'content-type': contentType } });
      const now = () => Math.floor(Date.now() / 1000);
      const singleUse = () => generic.sign({ iss: generic.url, aud: broker.issuer, sub: 'svc-once', iat: now(), exp: now() + 300, jti: crypto.randomUUID() });
      const service = (sub: string, claims: Record<string, unknown> = {}) =>
        generic.sign({ iss: generic.url, aud: broker.issuer, sub, iat: now(), exp: now() + 300, ...claims });
      const withProof = (body: URLSearchParams, proof: string) =>
        broker.request('/token', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof } });
      const proof = async (options: ProofOptions = {}) => (await DpopKey.generate()).proof('POST', `${broker.issuer}/token`, options);
      const alg = (header: Record<string, unknown>) =>
        `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(ciClaims(github.url, broker.issuer)))}.`;
      const scenarios = {
        granted: async () => post(exchangeForm(await good())),
        malformed_request: async () => post(new URLSearchParams({ subject_token: 'a.b.c', subject_token_type: ID_TOKEN })),
        method_not_allowed: async () => broker.request('/token'),
        unsupported_media_type: async () => post('{}', 'application/json'),
        request_too_large: async () => post(`grant_type=${encodeURIComponent(GRANT_TYPE)}&pad=${'x'.repeat(100_000)}`),
        unsupported_grant_type: async () => post(new URLSearchParams({ grant_type: 'password' })),
        target_malformed: async () => post(exchangeForm(await good(), { resource: 'not a uri' })),
        token_malformed: async () => post(exchangeForm('garbage')),
        header_forbidden: async () =>
          post(exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { header: { jku: `${github.url}/trap/jwks` } }))),
        algorithm_not_allowed: async () => post(exchangeForm(alg({ alg: 'none', typ: 'JWT' }))),
        issuer_untrusted: async () => {
          const stranger = freshIssuer(issuerBase(), 'audit-stranger');
          return post(exchangeForm(await stranger.sign(ciClaims(stranger.url, broker.issuer))));
        },
        signature_invalid: async () => post(exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }))),
        token_expired: async () => post(exchangeForm(await good({ iat: now() - 400, exp: now() - 100 }))),
        token_not_yet_valid: async () => post(exchangeForm(await good({ nbf: now() + 600, exp: now() + 900 }))),
        token_too_old: async () => post(exchangeForm(await good({ iat: now() - 3600, exp: now() + 600 }))),
        audience_mismatch: async () => post(exchangeForm(await good({ aud: 'https://github.com/acme' }))),
        claims_invalid: async () => post(exchangeForm(await good({ repository_id: 734201 }))),
        no_policy_matched: async () => post(exchangeForm(await good({ ref: 'refs/heads/feature' }))),
        denied_by_policy: async () => post(exchangeForm(await good({ event_name: 'pull_request_target' }))),
        audience_not_granted: async () => post(exchangeForm(await good(), { audience: 'https://evil.example' })),
        scope_not_granted: async () => post(exchangeForm(await good(), { scope: 'admin' })),
        template_claim_missing: async () => post(exchangeForm(await personToken(people, broker.issuer, 'svc-templated'))),
        template_value_forbidden: async () => post(exchangeForm(await personToken(people, broker.issuer, 'svc-templated', { team: 'ops:admin' }))),
        issuer_unavailable: async () =>
          post(exchangeForm(await cold.sign({ iss: cold.url, aud: broker.issuer, sub: 'svc-cold', iat: now(), exp: now() + 300 }))),
        replayed: async () => {
          const once = await singleUse();
          expect((await post(exchangeForm(once))).status).toBe(200);
          return post(exchangeForm(once));
        },
        replay_guard_unavailable: async () => {
          const once = await singleUse();
          await broker.setReplayGuardDown(true);
          try {
            return await post(exchangeForm(once));
          } finally {
            await broker.setReplayGuardDown(false);
          }
        },
        cloud_role_not_granted: async () =>
          post(exchangeForm(await good({ environment: 'cloud-aws' }), { requested_token_type: ID_TOKEN, audience: 'arn:aws:iam::123456789012:role/admin' })),
        cloud_limit_exceeded: async () =>
          post(exchangeForm(await good({ environment: 'cloud-aws', ref: 'refs/heads/fix#1' }), { requested_token_type: ID_TOKEN })),
        github_repository_not_granted: async () => post(githubForm(await good(), { audience: 'acme/infra' })),
        github_permission_not_granted: async () => post(githubForm(await good(), { scope: 'issues:write' })),
        github_refused: async () => post(githubForm(await good({ ref: 'refs/heads/ghost' }))),
        github_permission_not_allowed: async () => post(githubForm(await good({ ref: 'refs/heads/org-write' }))),
        github_owner_mismatch: async () => post(githubForm(await good({ ref: 'refs/heads/org-renamed' }))),
        github_unavailable: async () => {
          await githubApi.setDown(true);
          try {
            return await post(githubForm(await good()));
          } finally {
            await githubApi.setDown(false);
          }
        },
        // A default-audience Kubernetes token may live a year; fresh or not, it outlives what it names.
        token_lifetime_too_long: async () =>
          post(
            exchangeForm(
              await cluster.sign({
                iss: cluster.url,
                aud: [broker.issuer],
                sub: 'system:serviceaccount:ci:deployer',
                iat: now(),
                exp: now() + 365 * 24 * 3600,
                'kubernetes.io': { namespace: 'ci', serviceaccount: { name: 'deployer', uid: SERVICE_ACCOUNT_UID } },
              }),
            ),
          ),
        dpop_proof_invalid: async () => withProof(exchangeForm(await service('svc-dpop')), await proof({ typ: 'JWT' })),
        dpop_proof_replayed: async () => {
          const once = await proof();
          expect((await withProof(exchangeForm(await service('svc-dpop')), once)).status).toBe(200);
          return withProof(exchangeForm(await service('svc-dpop')), once);
        },
        dpop_required: async () => post(exchangeForm(await service('svc-dpop'))),
        dpop_not_supported: async () => withProof(githubForm(await good()), await proof()),
        subject_token_bound: async () => post(exchangeForm(await service('svc-b', { cnf: { jkt: 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } }))),
        operator_token_invalid: async () => get('/v1/audit/alerts', 'garbage'),
        operator_scope_missing: async () => get('/v1/audit/alerts', await auditorToken(broker, people, 'bob@acme.dev', 'keys:read')),
      } satisfies Record<
        Exclude<
          Reason,
          | 'internal_error'
          | 'rate_limited'
          | 'dpop_nonce_required'
          | 'token_revoked'
          | 'token_introspected'
          | 'signing_key_withdrawn'
          | 'signing_key_rotation_requested'
          | 'audit_page_signed_in'
          | 'actor_not_permitted'
          | 'actor_chain_too_deep'
          | 'actor_token_bound'
          | 'org_guardrails_unusable'
          | 'ci_work_ended'
          | 'github_revocation_unavailable'
          | `proxy_${string}`
        >,
        () => Promise<Response>
      >;
      // internal_error (a bug, by definition) is driven by a broker whose policy source throws: test/node/audit-log.test.ts.
      // dpop_nonce_required needs a broker that hands out nonces: test/suites/dpop-suite.ts reads its records on both runtimes.
      // token_revoked and token_introspected are not exchanges: test/suites/revocation-suite.ts reads their records on both runtimes.
      // signing_key_* are an operator's work on the keys: test/node/key-withdrawal.test.ts and test/workers/key-rotation.test.ts read their records.
      // audit_page_signed_in is an /audit sign-in, answered with a redirect: 'the /audit sign-in form' above reads its record.
      // actor_not_permitted, actor_chain_too_deep and actor_token_bound need policies with match_actor: test/suites/delegation-suite.ts reads their records.
      // proxy_* are not exchanges: test/suites/proxy-suite.ts reads their records on both runtimes.
      // rate_limited needs a broker with small limits: test/suites/limits-suite.ts finds its records on both runtimes.
      // org_guardrails_unusable needs an organisation's pinned .github repository: test/suites/org-guardrails-suite.ts reads its records.
      // ci_work_ended needs GitHub's workflow webhooks: test/suites/github-webhook-suite.ts reads its records on both runtimes.
      // github_revocation_unavailable needs a revocation store that fails a write: test/node/github-revocation.test.ts.

      it.each(Object.keys(scenarios) as (keyof typeof scenarios)[])('%s', async (reason) => {
        const response = await scenarios[reason]();
        const body = (await response.json()) as Record<string, unknown>;
        const id = body['audit_event_id'];
        expect(id).toBeTypeOf('string');
        if (reason !== 'granted') expect(body).not.toHaveProperty('access_token');
        const found = await events({ reason, limit: '500' });
        const record = found.events.find((event) => event.id === id);
        expect(record).toMatchObject({ reason });
        expect(JSON.stringify(record)).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
      });
    });
  });
}
