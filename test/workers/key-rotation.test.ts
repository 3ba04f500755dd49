import { createExecutionContext, createScheduledController, runInDurableObject } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { describe, expect, inject, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { KEY_RING_REFRESH_SECONDS, keyLifeCycle, readKeySettings } from '../../src/core/mint/key-life-cycle.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import type { KeyTransition, StoredSigningKey } from '../../src/core/mint/key-store.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { KEYS_SEALED_AT, keywayState, stateStores } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { remoteAuditLog } from '../../src/cli/remote-audit-log.ts';
import { verifyShardedAuditLog } from '../../src/core/audit/verify-shards.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { ownStateNamespace, workerEnv } from './workers-harness.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { auditShardOf } from '../../src/core/audit/audit-shards.ts';
import { auditShard, readAuditShards } from '../../src/runtimes/workers/audit-shard-state.ts';

const entry = (exports as unknown as { default: Fetcher }).default;
const SERVICE = 'https://deploy.acme.dev';

/** The Worker's own `scheduled` handler, as the Cron Trigger calls it, at `scheduledTime`. */
async function cron(scheduledTime: number): Promise<void> {
  await worker.scheduled(createScheduledController({ scheduledTime, cron: '*/5 * * * *' }), workerEnv);
}

/**
 * A Worker broker on `env` whose operators, people of `people`, hold `scopes` (by subject), with a keyway token for the
 * broker itself for any of them.
 */
async function operatedWorker(env: WorkerEnv, people: TestIssuer, scopes: Readonly<Record<string, string>>) {
  const issuer = env.KEYWAY_ISSUER;
  const policies = Object.entries(scopes).map(([sub, held]) => ({
    path: `ops/${sub}.yaml`,
    text: `version: 1\nissuer: "${people.url}"\nmatch: { sub: ${sub} }\ngrant: { audience: ${issuer}, scopes: [${held}] }\n`,
  }));
  const broker = await createWorkerBroker(env, policies, { log: silentLogger });
  const request = (path: string, init?: RequestInit) => broker.app.fetch(new Request(`${issuer}${path}`, init), env, createExecutionContext());
  const tokenFor = async (sub: string, scope: string) => {
    const now = Math.floor(Date.now() / 1000);
    const subject = await people.sign({ iss: people.url, aud: issuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID() });
    const response = await request('/token', {
      method: 'POST',
      body: exchangeForm(subject, { audience: issuer, scope }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  };
  return { broker, request, tokenFor };
}

describe('signing keys on Workers (workerd, the real state Durable Object)', () => {
  const { keys } = stateStores(() => keywayState(workerEnv.STATE));
  const jwksOf = async (fetcher: { fetch: (url: string) => Promise<Response> }) =>
    ((await (await fetcher.fetch(`${workerEnv.KEYWAY_ISSUER}/.well-known/jwks.json`)).json()) as JSONWebKeySet).keys.map((key) => key.kid);

  it('the Cron Trigger publishes the next key ahead of its turn and switches keys when due; a fresh isolate publishes both', async () => {
    expect((await entry.fetch(`${workerEnv.KEYWAY_ISSUER}/healthz`)).status).toBe(200);
    // The ES256 ring; the RS256 ring beside it runs the same schedule.
    const ring = async (alg = 'ES256') => (await keys.describeKeys()).filter((key) => key.alg === alg);
    const current = (await ring()).find((key) => key.state === 'current');
    const currentRsa = (await ring('RS256')).find((key) => key.state === 'current');
    expect(current?.activatedAt).toBeTypeOf('number');
    const cycle = keyLifeCycle(readKeySettings(workerEnv), Number(workerEnv.KEYWAY_MAX_TTL_SECONDS));
    const due = (current?.activatedAt ?? 0) + cycle.rotationMs;

    await cron(due - cycle.leadMs - 60_000);
    expect((await keys.describeKeys()).filter((key) => key.state === 'next')).toHaveLength(0);
    await cron(due - cycle.leadMs);
    const next = (await ring()).find((key) => key.state === 'next');
    expect(next).toMatchObject({ activatesAt: due });
    const nextRsa = (await ring('RS256')).find((key) => key.state === 'next');

    await cron(due);
    const after = await keys.describeKeys();
    expect(after.find((key) => key.kid === next?.kid)?.state).toBe('current');
    expect(after.find((key) => key.kid === current?.kid)).toMatchObject({ state: 'retired', retiredAt: due });
    expect(after.find((key) => key.kid === nextRsa?.kid)?.state).toBe('current');
    expect(after.find((key) => key.kid === currentRsa?.kid)?.state).toBe('retired');

    const isolate = await createWorkerBroker(workerEnv, [], { log: silentLogger });
    const published = await jwksOf({ fetch: (url) => Promise.resolve(isolate.app.fetch(new Request(url), workerEnv)) });
    expect(published).toEqual(expect.arrayContaining([current?.kid, next?.kid, currentRsa?.kid, nextRsa?.kid]));
    expect(isolate.keys.ring.signing.kid).toBe(next?.kid);
  });

  it('a Cron round whose key upkeep fails still signs the audit log with the current key, and ends failed', async () => {
    // Objects of its own: the key store refuses every new key, for real, in its own SQLite, and the other tests' keys stay as they are.
    const env = { ...workerEnv, STATE: ownStateNamespace(), AUDIT: ownStateNamespace(workerEnv.AUDIT) };
    const broker = await createWorkerBroker(env, [], { log: silentLogger });
    // A refused exchange: a record in the log for the round to sign.
    const refused = await broker.app.fetch(
      new Request(`${env.KEYWAY_ISSUER}/token`, {
        method: 'POST',
        body: 'grant_type=password',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      env,
      createExecutionContext(),
    );
    expect(refused.status).toBe(400);
    const kid = broker.keys.ring.signing.kid;
    const cycle = keyLifeCycle(readKeySettings(env), Number(env.KEYWAY_MAX_TTL_SECONDS));
    const current = (await stateStores(() => keywayState(env.STATE)).keys.describeKeys()).find((key) => key.kid === kid);
    // When the next key is due to be published: the round's key upkeep tries to store one.
    const publishAt = (current?.activatedAt ?? 0) + cycle.rotationMs - cycle.leadMs;
    await runInDurableObject(
      keywayState(env.STATE),
      (_instance, state) =>
        void state.storage.sql.exec("CREATE TRIGGER keys_down BEFORE INSERT ON signing_keys BEGIN SELECT RAISE(ABORT, 'key store down for the test'); END"),
    );

    await expect(worker.scheduled(createScheduledController({ scheduledTime: publishAt, cron: '*/5 * * * *' }), env)).rejects.toThrow(
      'key store down for the test',
    );
    expect((await stateStores(() => keywayState(env.STATE)).keys.describeKeys()).filter((key) => key.state === 'next')).toEqual([]);
    const root = await keywayState(env.STATE).latestRootCheckpoint();
    expect(root).toMatchObject({ time: new Date(Math.floor(publishAt / 1000) * 1000).toISOString() });
    expect(Object.values(root?.heads ?? {}).some((head) => head.seq > 0)).toBe(true);
    expect(decodeProtectedHeader(root?.jws ?? '').kid).toBe(kid);
  });

  it('a running isolate, not only a fresh one, publishes a rotated ring within one refresh period (the entry reloads a stale ring)', async () => {
    // The entry checks the age of its ring against Date.now(): the test holds that clock and moves it.
    vi.useFakeTimers({ toFake: ['Date'] });
    const refreshMs = KEY_RING_REFRESH_SECONDS * 1000;
    const cycle = keyLifeCycle(readKeySettings(workerEnv), Number(workerEnv.KEYWAY_MAX_TTL_SECONDS));
    let started: KeyTransition[] = [];
    try {
      // A refresh period past any earlier load: this request makes the running isolate load its ring, at `loaded`.
      const loaded = Date.now() + refreshMs;
      vi.setSystemTime(loaded);
      const published = await jwksOf(entry);
      // One next key for each ring: ES256 and RS256.
      started = await keys.advanceKeys({ now: loaded, cycle, rotate: true, upkeep: true });
      if (started.length !== 2 || started.some((transition) => transition.kind !== 'publish'))
        throw new Error(`no key was published: ${JSON.stringify(started)}`);
      // Within the refresh period the isolate serves the ring it loaded; then it loads the store's.
      vi.setSystemTime(loaded + refreshMs - 1);
      expect(await jwksOf(entry)).toEqual(published);
      vi.setSystemTime(loaded + refreshMs);
      expect((await jwksOf(entry)).sort()).toEqual([...published, ...started.map((transition) => transition.kid)].sort());
    } finally {
      vi.useRealTimers();
      // Switch to the new key as the cron would, so no key is left waiting for the tests after this one.
      const due = started.find((transition) => transition.kind === 'publish');
      if (due?.kind === 'publish') await keys.advanceKeys({ now: due.activatesAt, cycle, rotate: false, upkeep: true });
    }
  });

  it('keeps private keys sealed under KEYWAY_MASTER_KEY in the Durable Object', async () => {
    // A state object of its own, whatever the other tests did: the Worker's first key there, and the next one a rotation publishes.
    const states = ownStateNamespace();
    await createWorkerBroker({ ...workerEnv, STATE: states }, [], { log: silentLogger });
    const own = stateStores(() => keywayState(states)).keys;
    const cycle = keyLifeCycle(readKeySettings(workerEnv), Number(workerEnv.KEYWAY_MAX_TTL_SECONDS));
    expect(await own.advanceKeys({ now: Date.now(), cycle, rotate: true, upkeep: false })).toEqual([
      expect.objectContaining({ kind: 'publish' }),
      expect.objectContaining({ kind: 'publish' }),
    ]);
    // The rows as stored, read before the keys are opened (opening seals a plaintext key it finds).
    const rows = await runInDurableObject(keywayState(states), (_instance, state) =>
      state.storage.sql.exec<{ kid: string; private_jwk: string | null }>('SELECT kid, private_jwk FROM signing_keys').toArray(),
    );
    const opened = await own.listKeys();
    expect(rows.map((row) => row.kid).sort()).toEqual(opened.map((key) => key.kid).sort());
    // The first and the next key of each ring, ES256 and RS256.
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      const d = opened.find((key) => key.kid === row.kid)?.privateJwk?.d;
      expect(d).toBeTypeOf('string');
      expect(row.private_jwk).toMatch(/^eyJ[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(row.private_jwk).not.toContain(d);
    }
  });

  it('seals keys an earlier keyway stored in the clear once, as the state object upgrades, and refuses any key in the clear after that', async () => {
    const name = `legacy-keys-${crypto.randomUUID()}`;
    const state = () => keywayState(workerEnv.STATE, name);
    const store = stateStores(state).keys;
    const inClear = (key: StoredSigningKey, keyState: 'current' | 'next') =>
      runInDurableObject(
        state(),
        (_instance, durable) =>
          void durable.storage.sql.exec(
            'INSERT INTO signing_keys (kid, alg, state, created_at, activated_at, public_jwk, private_jwk) VALUES (?, ?, ?, ?, ?, ?, ?)',
            key.kid,
            'ES256',
            keyState,
            key.createdAt,
            key.createdAt,
            JSON.stringify(key.publicJwk),
            JSON.stringify(key.privateJwk),
          ),
      );
    const privateColumn = (kid: string) =>
      runInDurableObject(
        state(),
        (_instance, durable) => durable.storage.sql.exec<{ private_jwk: string }>('SELECT private_jwk FROM signing_keys WHERE kid = ?', kid).one().private_jwk,
      );

    // A state object an earlier keyway wrote: its key in the clear, and a token that key signed.
    const legacy = await generateSigningKey(Date.now());
    await inClear(legacy, 'current');
    const grant = {
      policy: { id: 'deploy' } as Policy,
      audiences: [SERVICE],
      scopes: ['deploy:write'],
      ttlSeconds: 300,
      subject: 'repo:acme/api',
      claims: {},
    } satisfies IssuedGrant;
    const source = { iss: 'https://ci.example', sub: 'repo:acme/api' };
    const signed = (await mintAccessToken({ issuer: workerEnv.KEYWAY_ISSUER, key: (await KeyRing.from([legacy])).signing, grant, source, now: Date.now() }))
      .token;

    const opened = await store.listKeys();
    expect(opened.map((key) => [key.kid, key.privateJwk])).toEqual([[legacy.kid, legacy.privateJwk]]);
    const sealed = await privateColumn(legacy.kid);
    expect(sealed).toMatch(/^eyJ[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(sealed).not.toContain(legacy.privateJwk?.d);
    expect(await runInDurableObject(state(), (_instance, durable) => durable.storage.get(KEYS_SEALED_AT))).toBeTypeOf('number');
    const ring = await KeyRing.from(opened);
    await expect(jwtVerify(signed, createLocalJWKSet(ring.jwks), { issuer: workerEnv.KEYWAY_ISSUER, audience: SERVICE })).resolves.toMatchObject({
      protectedHeader: { kid: legacy.kid },
    });

    // Upgraded: a key in the clear now is not one keyway wrote, and is refused.
    const planted = await generateSigningKey(Date.now());
    await inClear(planted, 'next');
    await expect(store.listKeys()).rejects.toThrow(`signing key ${planted.kid} is stored in the clear`);
    expect(await privateColumn(planted.kid)).toBe(JSON.stringify(planted.privateJwk));
  });

  it('refuses to start without KEYWAY_MASTER_KEY, and says how to set it', async () => {
    await expect(
      createWorkerBroker({ ...workerEnv, KEYWAY_MASTER_KEY: undefined, KEYWAY_MASTER_KEY_PREVIOUS: undefined }, [], { log: silentLogger }),
    ).rejects.toThrow(/KEYWAY_MASTER_KEY is not set.*wrangler secret put KEYWAY_MASTER_KEY/);
  });
  it('rotates on demand through POST /v1/keys/rotate with a keys:rotate token: the only on-demand form on Workers', async () => {
    const people = new TestIssuer(inject('testIssuerBase'), `w-ops-${crypto.randomUUID().slice(0, 8)}`);
    const issuer = workerEnv.KEYWAY_ISSUER;
    const policy = {
      path: 'ops/olga.yaml',
      text: `version: 1\nissuer: "${people.url}"\nmatch: { sub: olga@acme.dev }\ngrant: { audience: ${issuer}, scopes: [keys:read, keys:rotate] }\n`,
    };
    const broker = await createWorkerBroker(workerEnv, [policy], { log: silentLogger });
    const request = (path: string, init?: RequestInit) => broker.app.fetch(new Request(`${issuer}${path}`, init), workerEnv, createExecutionContext());
    const now = Math.floor(Date.now() / 1000);
    const subject = await people.sign({ iss: people.url, aud: issuer, sub: 'olga@acme.dev', iat: now, exp: now + 300, jti: crypto.randomUUID() });
    const exchanged = (await (
      await request('/token', {
        method: 'POST',
        body: exchangeForm(subject, { audience: issuer, scope: 'keys:rotate' }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      })
    ).json()) as { access_token: string };
    const read = await request('/v1/keys', { headers: { authorization: `Bearer ${exchanged.access_token}` } });
    expect(read.status).toBe(403);
    expect((await keys.describeKeys()).filter((key) => key.state === 'next')).toEqual([]);
    const rotated = await request('/v1/keys/rotate', { method: 'POST', headers: { authorization: `Bearer ${exchanged.access_token}` } });
    expect(rotated.status).toBe(200);
    const body = (await rotated.json()) as { next: { kid: string; state: string } };
    expect(body.next.state).toBe('next');
    expect((await keys.describeKeys()).find((key) => key.state === 'next' && key.alg === 'ES256')?.kid).toBe(body.next.kid);
    expect((await request('/v1/keys/rotate', { method: 'POST' })).status).toBe(401);
  });

  it('withdraws a compromised key through POST /v1/keys/withdraw with a keys:withdraw token: unpublished at once, its tokens refused by the isolate that withdrew it, each withdrawal and rotation in the audit log', async () => {
    const people = new TestIssuer(inject('testIssuerBase'), `w-withdraw-${crypto.randomUUID().slice(0, 8)}`);
    // A state object of its own: the other tests' keys stay as they are.
    const env = { ...workerEnv, STATE: ownStateNamespace() };
    const { broker, request, tokenFor } = await operatedWorker(env, people, {
      olga: 'keys:read, keys:rotate, keys:withdraw, tokens:introspect, audit:read',
      rita: 'keys:read',
    });
    const withdraw = (kid: string, token?: string) =>
      request('/v1/keys/withdraw', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify({ kid }),
      });
    const rita = await tokenFor('rita', 'keys:read');
    const olga = await tokenFor('olga', 'keys:withdraw');
    const kid = broker.keys.ring.signing.kid;
    const rsa = broker.keys.ring.signingFor('RS256').kid;

    expect((await withdraw(kid, rita)).status).toBe(403);
    expect((await withdraw(kid)).status).toBe(401);
    expect((await withdraw('no-such-kid', olga)).status).toBe(404);
    expect(await jwksOf({ fetch: (url) => Promise.resolve(broker.app.fetch(new Request(url), env)) })).toContain(kid);

    const withdrawn = await withdraw(kid, olga);
    expect(withdrawn.status).toBe(200);
    const answer = (await withdrawn.json()) as { status: string; key: { kid: string }; current: { kid: string } };
    expect(answer).toMatchObject({ status: 'withdrawn', key: { kid, state: 'removed', withdrawn_at: expect.any(String) } });
    expect(broker.keys.ring.signing.kid).toBe(answer.current.kid);
    const published = await jwksOf({ fetch: (url) => Promise.resolve(broker.app.fetch(new Request(url), env)) });
    expect(published).not.toContain(kid);
    expect(published).toEqual(expect.arrayContaining([answer.current.kid, rsa]));

    // Rita's token, signed by the withdrawn key: refused by the operator API and by introspection.
    expect((await request('/v1/keys', { headers: { authorization: `Bearer ${rita}` } })).status).toBe(401);
    const introspected = await request('/introspect', {
      method: 'POST',
      headers: { authorization: `Bearer ${await tokenFor('olga', 'tokens:introspect')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: rita }),
    });
    expect(await introspected.json()).toMatchObject({ active: false });
    // The RS256 ring's key is withdrawn the same way; withdrawing again changes nothing.
    const newOlga = await tokenFor('olga', 'keys:withdraw');
    expect(await (await withdraw(rsa, newOlga)).json()).toMatchObject({ status: 'withdrawn', key: { kid: rsa, alg: 'RS256' } });
    expect(await (await withdraw(kid, newOlga)).json()).toMatchObject({ status: 'already_removed', key: { kid } });
    expect(broker.keys.ring.signingFor('RS256').kid).not.toBe(rsa);
    const rotated = await request('/v1/keys/rotate', { method: 'POST', headers: { authorization: `Bearer ${await tokenFor('olga', 'keys:rotate')}` } });
    expect(rotated.status).toBe(200);

    // Each is in the audit log, naming the operator and the key (the unknown kid is not), and the log still verifies.
    const auditor = await tokenFor('olga', 'audit:read');
    const get = async (path: string, params?: URLSearchParams, authorized = true) =>
      request(`${path}${params === undefined ? '' : `?${params}`}`, authorized ? { headers: { authorization: `Bearer ${auditor}` } } : {});
    const recordsOf = async (reason: string) =>
      (
        (await (await get('/v1/audit/events', new URLSearchParams({ reason }))).json()) as { events: { subject?: string; decision: string; detail: string }[] }
      ).events.filter((event) => event.subject === `${people.url}#olga`);
    const withdrawals = (await recordsOf('signing_key_withdrawn')).map((event) => [event.decision, event.detail]);
    expect(withdrawals).toEqual([
      [
        'granted',
        expect.stringMatching(new RegExp(`^signing key ${kid} \\(ES256\\) was withdrawn already at .*: nothing changed; asked by operator \\S+#olga `)),
      ],
      [
        'granted',
        expect.stringMatching(
          new RegExp(
            `^withdrew signing key ${rsa} \\(RS256\\) for operator \\S+#olga \\(policy ops/olga, token \\S+\\); transitions: withdraw ${rsa}, publish \\S+ \\(signs from \\S+\\), activate `,
          ),
        ),
      ],
      [
        'granted',
        expect.stringMatching(
          new RegExp(
            `^withdrew signing key ${kid} \\(ES256\\) for operator \\S+#olga .*; transitions: withdraw ${kid}, publish \\S+ \\(signs from \\S+\\), activate ${answer.current.kid}$`,
          ),
        ),
      ],
    ]);
    expect(await recordsOf('signing_key_rotation_requested')).toEqual([
      expect.objectContaining({
        decision: 'granted',
        detail: expect.stringMatching(/^rotation of the signing keys requested by operator \S+#olga .*; transitions: publish /),
      }),
    ]);
    const log = await remoteAuditLog(get);
    if (!('chains' in log)) throw new Error('a Workers deployment lists its shards');
    expect(await verifyShardedAuditLog(log)).toMatchObject({ ok: true });
  });

  it('answers 503 for a withdrawal and a rotation whose audit record its shard refuses, the key withdrawn and the rotation made all the same; the withdrawal is recorded when asked again', async () => {
    const people = new TestIssuer(inject('testIssuerBase'), `w-unrecorded-${crypto.randomUUID().slice(0, 8)}`);
    const issuer = workerEnv.KEYWAY_ISSUER;
    const env = { ...workerEnv, STATE: ownStateNamespace(), AUDIT: ownStateNamespace(workerEnv.AUDIT) };
    const operated = await operatedWorker(env, people, { olga: 'keys:rotate, keys:withdraw, audit:read' });
    const { broker, request } = operated;
    const tokenFor = (scope: string) => operated.tokenFor('olga', scope);
    const post = async (path: string, scope: string, body?: object) => {
      const response = await request(path, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor(scope)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const kid = broker.keys.ring.signing.kid;
    // The operator's records go to one shard, by the broker's issuer and the operator's subject: it refuses them, for real, in its own SQLite.
    const shard = auditShard(env.AUDIT, auditShardOf({ issuer, subject: `${people.url}#olga` } as AuditEvent, readAuditShards(env)));
    const sql = (statement: string) => runInDurableObject(shard, (_instance, state) => void state.storage.sql.exec(statement));
    await tokenFor('audit:read');
    await sql(
      "CREATE TRIGGER key_audit_down BEFORE INSERT ON audit_events WHEN NEW.reason LIKE 'signing_key_%' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
    );
    const withdrawn = await post('/v1/keys/withdraw', 'keys:withdraw', { kid });
    const rotated = await post('/v1/keys/rotate', 'keys:rotate');
    await sql('DROP TRIGGER key_audit_down');

    expect(withdrawn).toEqual({
      status: 503,
      body: { error: 'temporarily_unavailable', error_description: expect.stringMatching(/^the key was withdrawn, but the audit log is unavailable/) },
    });
    expect(await jwksOf({ fetch: (url) => Promise.resolve(broker.app.fetch(new Request(url), env)) })).not.toContain(kid);
    expect(broker.keys.ring.signing.kid).not.toBe(kid);
    expect(rotated).toEqual({
      status: 503,
      body: { error: 'temporarily_unavailable', error_description: expect.stringMatching(/^the rotation was started, but the audit log is unavailable/) },
    });
    const again = await post('/v1/keys/withdraw', 'keys:withdraw', { kid });
    expect(again).toMatchObject({ status: 200, body: { status: 'already_removed' } });
    const auditor = await tokenFor('audit:read');
    const events = (await (await request('/v1/audit/events?reason=signing_key_withdrawn', { headers: { authorization: `Bearer ${auditor}` } })).json()) as {
      events: { detail: string }[];
    };
    expect(events.events.map((event) => event.detail)).toEqual([
      expect.stringMatching(new RegExp(`^signing key ${kid} \\(ES256\\) was withdrawn already at `)),
    ]);
  });
});
