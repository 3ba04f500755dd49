import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { GITHUB_TOKEN_TYPE } from './github-exchange-suite.ts';
import { GITHUB_TOKEN_MAP_TYPE } from './github-token-map-suite.ts';

/** Order of the P-256 group: an ECDSA signature (r, s) verifies as (r, n − s) too. */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function toBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${[...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('')}`);
}

function fromBigInt(value: bigint, length: number): Uint8Array {
  const hex = value.toString(16).padStart(length * 2, '0');
  return Uint8Array.from({ length }, (_, i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

/** The same ES256 token with its signature's twin: (r, n − s). */
function ecdsaTwin(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const bytes = base64url.decode(signature);
  const s = toBigInt(bytes.slice(32));
  return `${header}.${payload}.${base64url.encode(new Uint8Array([...bytes.slice(0, 32), ...fromBigInt(P256_ORDER - s, 32)]))}`;
}

/** The same token with the unused low bit of its signature's last base64url character flipped. */
function reencoded(token: string): string {
  const last = BASE64URL.indexOf(token.at(-1) ?? '');
  return `${token.slice(0, -1)}${BASE64URL[last ^ 1]}`;
}

/** `single_use: true` through the exchange, on Node and inside workerd. */
export function replaySuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`single use on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let plain: TestIssuer;
    const now = () => Math.floor(Date.now() / 1000);

    const exchange = async (token: string, extra: Record<string, string | string[]> = {}) => {
      const result = await postToken(broker, exchangeForm(token, extra));
      return { ...result, event: (await broker.auditEvent(result.body['audit_event_id'] as string)) as AuditEvent };
    };
    const replayed = { error: 'invalid_request', reason: 'replayed' } as const;
    const production = () => github.sign(ciClaims(github.url, broker.issuer));
    const release = (claims: Record<string, unknown> = {}) =>
      plain.sign({ iss: plain.url, aud: broker.issuer, sub: 'svc-release', iat: now(), exp: now() + 300, ...claims }, { alg: 'ES256' });

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'single-gh');
      plain = freshIssuer(issuerBase(), 'single-oidc');
      await plain.rotate({ alg: 'ES256' });
      broker = await start({
        'single/deploy.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
single_use: true
match:
  repository_id: "734201"
  environment: production
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write, artifacts:read]
`,
        'reusable/staging.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
match:
  repository_id: "734201"
  environment: staging
grant:
  audience: https://staging.acme.dev
`,
        // GitHub tokens, of one owner and of two (a map), from a broker with no GitHub App configured.
        'single/github.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
single_use: true
match:
  repository_id: "734201"
  environment: github
grant:
  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read } }
`,
        'single/github-octo.yaml': `
version: 1
issuer: { kind: github, url: "${github.url}" }
single_use: true
match:
  repository_id: "734201"
  environment: github
grant:
  github: { owner: octo-org, owner_id: "31337", repositories: [site], permissions: { contents: read } }
`,
        // A plain OIDC issuer that signs with ES256 and sends no jti.
        'single/release.yaml': `
version: 1
issuer: { kind: oidc, url: "${plain.url}", extra_algorithms: [ES256] }
single_use: true
match:
  sub: svc-release
grant:
  audience: https://release.acme.dev
`,
      });
    });
    afterAll(() => broker.close());

    it('refuses a second exchange of the token as replayed, and names the exchange that used it', async () => {
      const token = await production();
      const first = await exchange(token);
      expect(first.status).toBe(200);
      const second = await exchange(token);
      await expectRefusal(broker, second, replayed);
      expect(second.body['error_description']).toMatch(/already exchanged/);
      expect(second.event).toMatchObject({ decision: 'denied', policy: { matched: ['single/deploy'] } });
      expect(second.event.detail).toContain(`by jti`);
      expect(second.event.detail).toContain(first.event.id);
    });

    it('holds a claim for as long as the token verifies: one first exchanged within the clock tolerance after its exp is refused when sent again', async () => {
      // exp 30 s ago: still accepted under the broker's 60 s of clock tolerance, so its claim must outlive exp by as much.
      const token = await release({ jti: crypto.randomUUID(), iat: now() - 330, exp: now() - 30 });
      const first = await exchange(token);
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      await expectRefusal(broker, await exchange(token), replayed);
    });

    it('grants exactly one of two concurrent exchanges of one token', async () => {
      const token = await production();
      const results = await Promise.all([exchange(token), exchange(token)]);
      expect(results.map((result) => result.status).sort()).toEqual([200, 400]);
      const loser = results.find((result) => result.status === 400);
      const winner = results.find((result) => result.status === 200);
      expect((await expectRefusal(broker, loser as (typeof results)[number], replayed)).detail).toContain(winner?.event.id);
    });

    it('grants exactly one of many concurrent exchanges of one token', async () => {
      const token = await production();
      const results = await Promise.all(Array.from({ length: 8 }, () => exchange(token)));
      expect(results.filter((result) => result.status === 200)).toHaveLength(1);
      const losers = results.filter((result) => result.status !== 200);
      expect(losers).toHaveLength(7);
      for (const loser of losers) await expectRefusal(broker, loser, replayed);
    });

    it('does not use the token up on a refused attempt, so the job can retry with a correct request', async () => {
      const token = await production();
      await expectRefusal(broker, await exchange(token, { scope: 'admin' }), { error: 'invalid_scope', reason: 'scope_not_granted' });
      await expectRefusal(broker, await exchange(token, { audience: 'https://evil.example' }), { error: 'invalid_target', reason: 'audience_not_granted' });
      expect((await exchange(token, { scope: 'deploy:write' })).status).toBe(200);
      await expectRefusal(broker, await exchange(token, { scope: 'artifacts:read' }), replayed);
    });

    it.each([
      ['one GitHub token', { requested_token_type: GITHUB_TOKEN_TYPE, resource: 'https://github.com/acme/api' }],
      ['a GitHub token map', { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: ['https://github.com/acme/api', 'https://github.com/octo-org/site'] }],
    ])('does not use the token up when it is granted %s but no GitHub App is configured: the retry is answered alike, not as replayed', async (_what, form) => {
      const token = await github.sign(ciClaims(github.url, broker.issuer, { environment: 'github' }));
      const unavailable = { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' } as const;
      const first = await expectRefusal(broker, await exchange(token, form), unavailable);
      expect(first.detail).toContain('no GitHub App is configured');
      await expectRefusal(broker, await exchange(token, form), unavailable);
    });

    it('lets a token granted by a policy without single_use be exchanged again', async () => {
      const token = await github.sign(ciClaims(github.url, broker.issuer, { environment: 'staging' }));
      expect((await exchange(token)).status).toBe(200);
      expect((await exchange(token)).status).toBe(200);
    });

    it('keeps tokens with different jti apart, even with otherwise equal claims', async () => {
      const claims = ciClaims(github.url, broker.issuer);
      expect((await exchange(await github.sign(claims))).status).toBe(200);
      expect((await exchange(await github.sign({ ...claims, jti: crypto.randomUUID() }))).status).toBe(200);
    });

    it('knows a token by its issuer and jti alone: the jti signed again with another sub, spelling, run or time is refused as replayed', async () => {
      const claims = ciClaims(github.url, broker.issuer);
      const first = await exchange(await github.sign(claims));
      expect(first.status).toBe(200);
      const later = now() + 1;
      const variants = [
        // Another identity: on Workers another audit shard, another subject rate limit.
        { sub: 'repo:acme/api:environment:PRODUCTION', environment: 'PRODUCTION' },
        { repository: 'Acme/API', sub: 'repo:Acme/API:environment:production' },
        { run_id: '9002', ref: 'refs/heads/main ' },
        { iat: later, nbf: later - 5, exp: later + 300 },
      ];
      for (const variant of variants) {
        const again = await exchange(await github.sign({ ...claims, ...variant }));
        expect((await expectRefusal(broker, again, replayed)).detail, JSON.stringify(variant)).toContain(`by jti`);
        expect(again.event.detail).toContain(first.event.id);
      }
    });

    it('keeps one jti of two issuers apart, and knows a token whose jti is empty by its signed part', async () => {
      const jti = crypto.randomUUID();
      expect((await exchange(await github.sign({ ...ciClaims(github.url, broker.issuer), jti }))).status).toBe(200);
      expect((await exchange(await release({ jti }))).status).toBe(200);
      const first = await exchange(await release({ jti: '', run_id: crypto.randomUUID() }));
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      const another = await release({ jti: '', run_id: crypto.randomUUID() });
      expect((await exchange(another)).status).toBe(200);
      expect(await expectRefusal(broker, await exchange(another), replayed)).toMatchObject({ detail: expect.stringContaining('by signed part') });
    });

    it('knows a token without jti by its signed part: a re-encoded or ECDSA-twin signature is the same token', async () => {
      const token = await release();
      const twin = ecdsaTwin(token);
      expect(twin).not.toBe(token);
      // The twin verifies on its own: it is granted first, and the original is then a replay.
      const first = await exchange(twin);
      expect(first.status).toBe(200);
      const original = await exchange(token);
      expect(await expectRefusal(broker, original, replayed)).toMatchObject({ detail: expect.stringContaining('by signed part') });
      expect(original.event.subject_token?.sha256).not.toBe(first.event.subject_token?.sha256);

      // Same sub and times, another run: another signed part.
      const another = await release({ run_id: crypto.randomUUID() });
      expect((await exchange(another)).status).toBe(200);
      expect(reencoded(another)).not.toBe(another);
      await expectRefusal(broker, await exchange(reencoded(another)), replayed);
    });
  });
}
