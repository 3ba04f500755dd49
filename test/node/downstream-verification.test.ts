import { join } from 'node:path';
import { Hono } from 'hono';
import { importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { keywayAuth, verifyAccessToken, type KeywayAuthVariables } from '../../src/index.ts';
import { silentLogger } from '../../src/core/log.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { loadNodeMasterKeys } from '../../src/storage/master-key-file.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { JWKS_MAX_AGE_SECONDS } from '../../src/core/mint/key-life-cycle.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { athOf, DpopKey } from '../support/dpop-key.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { OWN_URL_ISSUER, testConfig, writeTree } from './node-harness.ts';

const SERVICE = 'https://deploy.acme.dev';

/**
 * A downstream service protected by `keywayAuth`, fetching the broker's JWKS over HTTP as a real
 * service does, from real Node brokers whose issuer is their own loopback URL.
 */
describe('verifying keyway tokens downstream (remote JWKS)', () => {
  let issuer: TestIssuer;
  let broker: NodeBroker;
  let foreign: NodeBroker;
  let ring: KeyRing;
  let app: Hono<{ Variables: KeywayAuthVariables }>;

  async function startBroker(): Promise<NodeBroker> {
    const root = writeTree({
      'policies/deploy.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_id: "734201" }
grant: { audience: [${SERVICE}, https://artifacts.acme.dev], scopes: [deploy:write, artifacts:read] }
`,
    });
    return startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log: silentLogger });
  }

  /** A broker's signing keys, read from its SQLite file. */
  async function keysOf(from: NodeBroker): Promise<KeyRing> {
    const db = openSqliteFile(join(from.config.dataDir, DATABASE_FILE));
    try {
      return await KeyRing.open(new SqliteKeyStore(db, await SecretBox.fromMasterKeys(loadNodeMasterKeys({}, from.config.dataDir, silentLogger))), Date.now());
    } finally {
      db.close();
    }
  }

  /** A token from `from`'s /token endpoint, by a real exchange. */
  async function exchange(from: NodeBroker, extra: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<string> {
    const subject = await issuer.sign(ciClaims(issuer.url, from.config.issuer));
    const response = await fetch(`${from.url}/token`, {
      method: 'POST',
      body: exchangeForm(subject, extra),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
    const body = (await response.json()) as { access_token?: string };
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body.access_token ?? '';
  }

  /** The broker's own signing key, for tokens its policies would never mint. */
  const mintWithBrokerKey = async (grant: Partial<IssuedGrant>, now: number) =>
    (
      await mintAccessToken({
        issuer: broker.config.issuer,
        key: ring.signing,
        grant: {
          policy: { id: 'deploy' } as Policy,
          audiences: [SERVICE],
          scopes: ['deploy:write'],
          ttlSeconds: 300,
          subject: 'repo:acme/api',
          claims: {},
          ...grant,
        },
        source: { iss: issuer.url, sub: 'repo:acme/api' },
        now,
      })
    ).token;

  const call = (token: string) => app.request('/deploy', { method: 'POST', headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    issuer = new TestIssuer(inject('testIssuerBase'), `downstream-${crypto.randomUUID().slice(0, 8)}`);
    [broker, foreign] = await Promise.all([startBroker(), startBroker()]);
    ring = await keysOf(broker);
    // The one line a service adds.
    app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.use('/deploy', keywayAuth({ issuer: broker.config.issuer, audience: SERVICE, scopes: ['deploy:write'] }));
    app.post('/deploy', (c) => c.json({ deployed_by: c.get('keywayToken').sub, policy: c.get('keywayToken').client_id }));
  });
  afterAll(async () => {
    await Promise.all([broker?.close(), foreign?.close()]);
  });

  it('lets a token the broker issued through, with its claims', async () => {
    const response = await call(await exchange(broker, { audience: SERVICE }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ deployed_by: `${issuer.url}#repo:acme/api:environment:production`, policy: 'deploy' });
  });

  it.each([
    ['issued for another audience', () => exchange(broker, { audience: 'https://artifacts.acme.dev' })],
    ['expired', () => mintWithBrokerKey({ ttlSeconds: 60 }, Date.now() - 10 * 60_000)],
    ['from another keyway broker (foreign issuer)', () => exchange(foreign, { audience: SERVICE })],
    [
      'signed by another broker but claiming this one as issuer',
      async () => {
        const other = await keysOf(foreign);
        return (
          await mintAccessToken({
            issuer: broker.config.issuer,
            key: other.signing,
            grant: { policy: { id: 'x' } as Policy, audiences: [SERVICE], scopes: ['deploy:write'], ttlSeconds: 300, subject: 's', claims: {} },
            source: { iss: issuer.url, sub: 's' },
            now: Date.now(),
          })
        ).token;
      },
    ],
    [
      'signed by this broker but naming another issuer',
      async () =>
        (
          await mintAccessToken({
            issuer: 'https://elsewhere.keyway.test',
            key: ring.signing,
            grant: { policy: { id: 'deploy' } as Policy, audiences: [SERVICE], scopes: ['deploy:write'], ttlSeconds: 300, subject: 's', claims: {} },
            source: { iss: issuer.url, sub: 's' },
            now: Date.now(),
          })
        ).token,
    ],
    [
      'without exp (an at+jwt signed by the broker key that never expires)',
      () =>
        new SignJWT({ client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ring.signing.kid })
          .setIssuer(broker.config.issuer)
          .setAudience(SERVICE)
          .setSubject('repo:acme/api')
          .setIssuedAt()
          .sign(ring.signing.key),
    ],
    [
      'without iat (an at+jwt signed by the broker key that says nothing of when it was issued, RFC 9068 section 2.2)',
      () =>
        new SignJWT({ client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ring.signing.kid })
          .setIssuer(broker.config.issuer)
          .setAudience(SERVICE)
          .setSubject('repo:acme/api')
          .setExpirationTime('5m')
          .sign(ring.signing.key),
    ],
    ...['sub', 'jti', 'client_id'].map((claim): [string, () => Promise<string>] => [
      `without ${claim} (an at+jwt signed by the broker key, every other claim in place)`,
      () => {
        const every: Record<string, string> = { sub: 'repo:acme/api', client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() };
        const { [claim]: _left, ...claims } = every;
        return new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ring.signing.kid })
          .setIssuer(broker.config.issuer)
          .setAudience(SERVICE)
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(ring.signing.key);
      },
    ]),
    [
      "signed by the broker's RS256 key, which its JWKS publishes for Entra's tokens: keyway's own tokens are ES256 only",
      async () => {
        const rsa = ring.signingFor('RS256');
        return new SignJWT({ client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: rsa.kid })
          .setIssuer(broker.config.issuer)
          .setAudience(SERVICE)
          .setSubject('repo:acme/api')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(rsa.key);
      },
    ],
    [
      'typed JWT, not at+jwt (an ID token signed by the broker key)',
      () =>
        new SignJWT({ client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: ring.signing.kid })
          .setIssuer(broker.config.issuer)
          .setAudience(SERVICE)
          .setSubject('repo:acme/api')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(ring.signing.key),
    ],
  ])('refuses a token %s: 401 invalid_token', async (_name, token) => {
    const response = await call(await token());
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('refuses a token without the route scope: 403 insufficient_scope', async () => {
    const token = await exchange(broker, { audience: SERVICE, scope: 'artifacts:read' });
    const response = await call(token);
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="deploy:write"');
    // The same token passes where that scope is enough: only the scope was wrong.
    await expect(verifyAccessToken(token, { issuer: broker.config.issuer, audience: SERVICE, scopes: ['artifacts:read'] })).resolves.toMatchObject({
      scope: 'artifacts:read',
    });
  });
  it('refuses a DPoP proof used once already in the last second of its life, as jose still takes it (default replay store)', async () => {
    const key = await DpopKey.generate();
    const token = await exchange(broker, { audience: SERVICE }, { dpop: await key.proof('POST', `${broker.config.issuer}/token`) });
    const served = new Hono<{ Variables: KeywayAuthVariables }>();
    served.use('/deploy', keywayAuth({ issuer: broker.config.issuer, audience: SERVICE, scopes: ['deploy:write'], externalOrigin: SERVICE }));
    served.post('/deploy', (c) => c.json({ deployed_by: c.get('keywayToken').sub }));
    const service = await serveOnLoopback(served.fetch);
    try {
      const deploy = (proof: string) => fetch(`${service.base}/deploy`, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: proof } });
      // The broker's keys are fetched (and cached) before the clock matters.
      expect((await deploy(await key.proof('POST', `${SERVICE}/deploy`, { ath: await athOf(token) }))).status).toBe(200);
      // Early in a second, a proof whose iat is 65 seconds before it: jose, which reads whole seconds, still takes it for the
      // rest of this second. Used once, it must stay used: a copy replayed within that second is refused.
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 20));
      const proof = await key.proof('POST', `${SERVICE}/deploy`, { ath: await athOf(token), iat: Math.floor(Date.now() / 1000) - 65 });
      expect((await deploy(proof)).status).toBe(200);
      const replayed = await deploy(proof);
      expect({ status: replayed.status, challenge: replayed.headers.get('www-authenticate') }).toEqual({
        status: 401,
        challenge: expect.stringMatching(/^DPoP error="invalid_dpop_proof"/),
      });
    } finally {
      await service.close();
    }
  });
});

describe("verifyAccessToken's cached JWKS", () => {
  it('fetches the key set again once the JWKS max-age has passed: a key the broker withdrew is refused within it, not 10 minutes', async () => {
    const [kept, withdrawn] = await Promise.all([generateSigningKey(Date.now()), generateSigningKey(Date.now())]);
    let published = [kept, withdrawn];
    // The broker's JWKS as a relying party fetches it: a real server on 127.0.0.1 whose key set changes under the verifier.
    const jwks = await serveOnLoopback((request) =>
      new URL(request.url).pathname === '/.well-known/jwks.json'
        ? Response.json({ keys: published.map((key) => key.publicJwk) }, { headers: { 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` } })
        : new Response(null, { status: 404 }),
    );
    // jose dates its cached key set by Date.now(): only Date is held, so the fetches and the server run on real time.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const start = Date.now();
      const token = await new SignJWT({ client_id: 'deploy', scope: 'deploy:write', jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: withdrawn.kid })
        .setIssuer(jwks.base)
        .setAudience(SERVICE)
        .setSubject('repo:acme/api')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(await importJWK(withdrawn.privateJwk ?? {}, 'ES256'));
      const verify = () => verifyAccessToken(token, { issuer: jwks.base, audience: SERVICE });
      await expect(verify()).resolves.toMatchObject({ sub: 'repo:acme/api' });

      published = [kept];
      // Within the max-age the cached set is used, as any relying party may; once it has passed, the set is fetched again.
      vi.setSystemTime(start + JWKS_MAX_AGE_SECONDS * 1000 - 1000);
      await expect(verify()).resolves.toMatchObject({ sub: 'repo:acme/api' });
      vi.setSystemTime(start + JWKS_MAX_AGE_SECONDS * 1000 + 1000);
      await expect(verify()).rejects.toMatchObject({ code: 'invalid_token' });
    } finally {
      vi.useRealTimers();
      await jwks.close();
    }
  });
});
