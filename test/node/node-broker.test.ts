import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { PolicyLoadError } from '../../src/core/policy/load-policies.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { nodeConfigFromEnv } from '../../src/config/node-config.ts';
import { STALLED_AFTER_SECONDS, UNWRITABLE_AFTER_FAILURE_MS } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, testConfig, writeTree } from './node-harness.ts';

describe('the Node broker', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  async function start(root: string): Promise<NodeBroker> {
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    running.push(broker);
    return broker;
  }

  function setup() {
    const github = freshIssuer(inject('testIssuerBase'), 'node-gh');
    const generic = freshIssuer(inject('testIssuerBase'), 'node-oidc');
    const policies = Object.fromEntries(Object.entries(suitePolicies(github, generic)).map(([path, text]) => [`policies/${path}`, text]));
    return { root: writeTree(policies), github };
  }

  const exchange = (broker: NodeBroker, token: string, requestId?: string) =>
    fetch(`${broker.url}/token`, {
      method: 'POST',
      body: exchangeForm(token),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(requestId === undefined ? {} : { 'x-request-id': requestId }) },
    });

  it('answers /healthz once policies are loaded and storage is open', async () => {
    const broker = await start(setup().root);
    const response = await fetch(`${broker.url}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('started as a production deployment from this repository, loads no example policy: nothing is active until its operator writes one', async () => {
    const dataDir = writeTree({});
    const production = { KEYWAY_ISSUER: 'https://keyway.example.com', PORT: '0', KEYWAY_DATA_DIR: dataDir, KEYWAY_WATCH_POLICIES: '0' };
    const broker = await startNodeBroker(nodeConfigFromEnv(production, REPOSITORY_ROOT), { log: silentLogger });
    running.push(broker);
    expect(broker.config.policiesDir).toBe(join(REPOSITORY_ROOT, 'policies'));
    expect(broker.config.maxConnections).toBe(10_000);
    expect(nodeConfigFromEnv({ ...production, KEYWAY_MAX_CONNECTIONS: '64' }, REPOSITORY_ROOT).maxConnections).toBe(64);
    expect(() => nodeConfigFromEnv({ ...production, KEYWAY_MAX_CONNECTIONS: '0' }, REPOSITORY_ROOT)).toThrow(/KEYWAY_MAX_CONNECTIONS/);
    expect(broker.policies().policies).toEqual([]);
    expect(broker.policies().inactive.map((policy) => [policy.id, policy.why])).toEqual([
      ['dev/auditor', expect.stringContaining('KEYWAY_DEV')],
      ['dev/quickstart', expect.stringContaining('KEYWAY_DEV')],
    ]);
  });

  it('issues no token when the audit log cannot be written, and recovers without losing a record', async () => {
    const { root, github } = setup();
    const broker = await start(root);
    const saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const count = () => saboteur.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n;
    try {
      expect((await exchange(broker, await github.sign(ciClaims(github.url, broker.config.issuer)))).status).toBe(200);
      expect(count()).toBe(1);

      saboteur.exec('ALTER TABLE audit_events RENAME TO audit_events_away');
      const refused = await exchange(broker, await github.sign(ciClaims(github.url, broker.config.issuer)));
      expect(refused.status).toBe(503);
      const body = (await refused.json()) as Record<string, unknown>;
      expect(body['error']).toBe('temporarily_unavailable');
      expect(body).not.toHaveProperty('access_token');
      expect(refused.headers.get('cache-control')).toBe('no-store');

      saboteur.exec('ALTER TABLE audit_events_away RENAME TO audit_events');
      expect((await exchange(broker, await github.sign(ciClaims(github.url, broker.config.issuer)))).status).toBe(200);
      expect(count()).toBe(2);
    } finally {
      saboteur.close();
    }
  });

  it('on port 0 binds a free port, which an issuer on port 0 then names; one that fails to start lets its port go', async () => {
    const broker = await startNodeBroker(testConfig(setup().root, { issuer: OWN_URL_ISSUER }), { log: silentLogger });
    running.push(broker);
    expect(new URL(broker.url).port).not.toBe('0');
    expect(broker.config.issuer).toBe(broker.url);
    const metadata = (await (await fetch(`${broker.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({ issuer: broker.url, token_endpoint: `${broker.url}/token` });

    const listening = () => process.getActiveResourcesInfo().filter((resource) => resource === 'TCPServerWrap').length;
    const before = listening();
    const broken = writeTree({ 'policies/bad.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x, scope: [a] }\n' });
    await expect(startNodeBroker(testConfig(broken, { issuer: OWN_URL_ISSUER }), { log: silentLogger })).rejects.toThrow(PolicyLoadError);
    // A closed server lets go of its handle a moment after its close callback.
    await expect.poll(listening, { timeout: 2000 }).toBe(before);
  });

  it('keeps its signing key across restarts, so tokens issued before a restart still verify', async () => {
    const { root, github } = setup();
    const first = await start(root);
    const granted = (await (await exchange(first, await github.sign(ciClaims(github.url, first.config.issuer)))).json()) as { access_token: string };
    const jwksBefore = await (await fetch(`${first.url}/.well-known/jwks.json`)).json();
    await running.splice(0)[0]?.close();

    const second = await start(root);
    const jwksAfter = (await (await fetch(`${second.url}/.well-known/jwks.json`)).json()) as Parameters<typeof createLocalJWKSet>[0];
    expect(jwksAfter).toEqual(jwksBefore);
    await expect(jwtVerify(granted.access_token, createLocalJWKSet(jwksAfter), { issuer: second.config.issuer, typ: 'at+jwt' })).resolves.toBeDefined();
  });

  const probe = async (broker: NodeBroker, path: string, method = 'GET') => {
    const response = await fetch(`${broker.url}${path}`, { method });
    return {
      status: response.status,
      body: await response.text(),
      type: response.headers.get('content-type'),
      cache: response.headers.get('cache-control'),
      sniff: response.headers.get('x-content-type-options'),
    };
  };

  it('answers anyone /livez and /readyz with `ok`, and nothing else', async () => {
    const broker = await start(setup().root);
    const ok = { status: 200, body: 'ok', type: 'text/plain; charset=utf-8', cache: 'no-store', sniff: 'nosniff' };
    expect(await probe(broker, '/livez')).toEqual(ok);
    expect(await probe(broker, '/readyz')).toEqual(ok);
    expect(await probe(broker, '/readyz', 'HEAD')).toEqual({ ...ok, body: '' });
    // Only GET and HEAD are probes.
    expect(await probe(broker, '/readyz', 'POST')).toMatchObject({ status: 404, body: '{"error":"not_found"}' });
  });

  it('/readyz says not ready once an audit commit failed, until one succeeds or 10 s pass; /livez still says ok', async () => {
    const { root, github } = setup();
    let clock = Date.now();
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger, now: () => clock });
    running.push(broker);
    const notReady = { status: 503, body: 'not ready' };
    const saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const failCommits = (fail: boolean) =>
      saboteur.exec(fail ? 'ALTER TABLE audit_events RENAME TO audit_events_away' : 'ALTER TABLE audit_events_away RENAME TO audit_events');
    const token = async () => github.sign(ciClaims(github.url, broker.config.issuer));
    try {
      failCommits(true);
      expect((await exchange(broker, await token())).status).toBe(503);
      expect(await probe(broker, '/readyz')).toMatchObject(notReady);
      expect(await probe(broker, '/livez')).toMatchObject({ status: 200, body: 'ok' });
      failCommits(false);
      // Readiness never writes: it stays not ready until a commit succeeds...
      clock += UNWRITABLE_AFTER_FAILURE_MS - 1;
      expect(await probe(broker, '/readyz')).toMatchObject(notReady);
      expect((await exchange(broker, await token())).status).toBe(200);
      expect(await probe(broker, '/readyz')).toMatchObject({ status: 200, body: 'ok' });

      // ...or the window has passed, so that the next exchange tests the store again.
      failCommits(true);
      expect((await exchange(broker, await token())).status).toBe(503);
      failCommits(false);
      clock += UNWRITABLE_AFTER_FAILURE_MS - 1;
      expect(await probe(broker, '/readyz')).toMatchObject(notReady);
      clock += 1;
      expect(await probe(broker, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
    } finally {
      saboteur.close();
    }
  });

  it('a write its audit writer leaves unanswered (the lock held by another connection) turns /healthz degraded and /readyz not ready past 10 s, shown in /metrics, until it commits', async () => {
    const { root, github } = setup();
    const broker = await start(root);
    const holder = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const health = async () => ((await (await fetch(`${broker.url}/healthz`)).json()) as { status: string }).status;
    const waiting = async () =>
      Number(/^keyway_audit_writer_waiting_seconds (\S+)$/m.exec(await (await fetch(`${broker.url}/metrics`)).text())?.[1] ?? Number.NaN);
    try {
      expect(await waiting()).toBe(0);
      // Each of the writer's transactions waits SQLite's busy timeout (5 s) for the lock, then fails. The first exchange's
      // record goes to the writer alone, and a batch of one that fails is not tried again: that exchange is answered 503.
      // The other two, queued behind it, are the next batch (tried again one record at a time if it fails). The lock is let
      // go once the first is answered and the oldest write has been seen waiting past 10 s: too soon for either of the two,
      // tried alone, to have waited out a timeout of its own, so both commit.
      holder.exec('BEGIN EXCLUSIVE');
      const ask = async (requestId: string) => {
        const answer = await exchange(broker, await github.sign(ciClaims(github.url, broker.config.issuer)), requestId);
        return { requestId, status: answer.status, cacheControl: answer.headers.get('cache-control'), body: (await answer.json()) as Record<string, unknown> };
      };
      const first = ask('stalled-first');
      await expect.poll(waiting, { interval: 20 }).toBeGreaterThan(0);
      const answers = Promise.all([first, ask('stalled-second'), ask('stalled-third')]);
      expect(await health()).toBe('ok');
      expect(await probe(broker, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
      await expect.poll(health, { timeout: 15_000, interval: 100 }).toBe('degraded');
      expect(await waiting()).toBeGreaterThan(STALLED_AFTER_SECONDS);
      expect(await probe(broker, '/readyz')).toMatchObject({ status: 503, body: 'not ready' });
      expect(await probe(broker, '/livez')).toMatchObject({ status: 200, body: 'ok' });
      await first;
      holder.exec('ROLLBACK');

      const [refused, ...granted] = await answers;
      expect(refused).toEqual({
        requestId: 'stalled-first',
        status: 503,
        cacheControl: 'no-store',
        body: { error: 'temporarily_unavailable', error_description: 'the audit log is unavailable, so no token was issued; retry later' },
      });
      const audit = new SqliteAuditStore(holder);
      // The refused exchange left no record; each granted one, its own.
      const { records } = await audit.query({ limit: 100, order: 'asc' });
      expect(records.map((record) => `${record.event.request.id} ${record.event.decision}`).sort()).toEqual([
        'stalled-second granted',
        'stalled-third granted',
      ]);
      for (const answer of granted) {
        expect(answer).toMatchObject({ status: 200, cacheControl: 'no-store', body: { access_token: expect.any(String) } });
        expect(await audit.get(answer.body['audit_event_id'] as string)).toMatchObject({ decision: 'granted', request: { id: answer.requestId } });
      }
      expect(await health()).toBe('ok');
      // Writes an answer leaves behind (its alert observation) may be in flight a moment longer.
      await expect.poll(waiting).toBe(0);
      expect(await probe(broker, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
    } finally {
      holder.close();
    }
  }, 30_000);

  it('closed during a key rotation and a checkpoint, lets each finish in its own transaction first: after, never half', async () => {
    const { root, github } = setup();
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    expect((await exchange(broker, await github.sign(ciClaims(github.url, broker.config.issuer)))).status).toBe(200);
    const rotation = broker.keyUpkeep({ rotate: true });
    const checkpoint = broker.auditUpkeep();
    await broker.close();
    // A next key for each ring, ES256 and RS256.
    expect((await rotation).map((transition) => transition.kind)).toEqual(['publish', 'publish']);
    await checkpoint;
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    try {
      expect(db.all<{ key: string }>("SELECT alg || ' ' || state AS key FROM signing_keys ORDER BY alg, state").map((row) => row.key)).toEqual([
        'ES256 current',
        'ES256 next',
        'RS256 current',
        'RS256 next',
      ]);
      const head = db.all<{ seq: number }>('SELECT max(seq) AS seq FROM audit_events')[0]?.seq;
      expect(db.all<{ seq: number }>('SELECT max(seq) AS seq FROM audit_checkpoints')[0]?.seq).toBe(head);
    } finally {
      db.close();
    }
  });
});
