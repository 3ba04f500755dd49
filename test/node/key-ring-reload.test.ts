import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { KEY_RING_REFRESH_SECONDS, KEY_RING_SERVED_MS } from '../../src/core/mint/key-life-cycle.ts';
import { DATABASE_FILE, startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import type { NodeBrokerConfig } from '../../src/config/node-config.ts';
import { readAuditSettings } from '../../src/core/audit/audit-settings.ts';
import { decodeJwt } from 'jose';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { runKeyway, testConfig, writeTree } from './node-harness.ts';
import { recordingLogger } from './operated-broker.ts';

const SERVICE = 'https://deploy.acme.dev';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/**
 * A broker on `files` whose clock the test sets (`at(ms)`: that long after its start; `onRead(hook)`: the hook runs each
 * time the broker reads it, before it is read) and a connection of the test's own to its database.
 */
async function clockedBroker(files: Record<string, string>, log = recordingLogger(), config: Partial<NodeBrokerConfig> = {}) {
  const root = writeTree(files);
  mkdirSync(join(root, 'policies'), { recursive: true });
  const start = Date.now();
  let clock = start;
  let hook = () => {};
  const broker = await startNodeBroker(testConfig(root, config), {
    log,
    now: () => {
      hook();
      return clock;
    },
  });
  const db = openSqliteFile(join(broker.config.dataDir, DATABASE_FILE), { existing: true });
  return {
    broker,
    db,
    start,
    at: (ms: number) => {
      clock = start + ms;
    },
    onRead: (run: () => void) => {
      hook = run;
    },
    close: async () => {
      db.close();
      await broker.close();
    },
  };
}

describe('a Node process whose key ring cannot be reloaded', () => {
  it('serves its ring through one failed round, then answers 503 (not ready) until a reload succeeds, rather than serving a stale ring forever; /healthz (degraded) and /metrics answer meanwhile', async () => {
    const issuer = new TestIssuer(inject('testIssuerBase'), `reload-${crypto.randomUUID().slice(0, 8)}`);
    const log = recordingLogger();
    const { broker, db, at, close } = await clockedBroker(
      {
        'policies/deploy.yaml': `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmatch: { repository_id: "734201" }\ngrant: { audience: [${SERVICE}], scopes: [deploy:write] }\n`,
      },
      log,
    );
    try {
      const exchange = async () => {
        const response = await fetch(`${broker.url}/token`, {
          method: 'POST',
          body: exchangeForm(await issuer.sign(ciClaims(issuer.url, broker.config.issuer)), { audience: SERVICE }),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> };
      };
      const status = async (path: string) => (await fetch(`${broker.url}${path}`)).status;
      const health = async () => {
        const response = await fetch(`${broker.url}/healthz`);
        return { status: response.status, body: (await response.json()) as unknown };
      };
      /** Whether a checkpoint signs the log's head. */
      const signedHead = () => db.all<{ seq: number }>('SELECT seq FROM audit_checkpoints WHERE seq = (SELECT MAX(seq) FROM audit_events)').length === 1;
      expect((await exchange()).status).toBe(200);
      expect(await health()).toEqual({ status: 200, body: { status: 'ok' } });

      // A key row that no longer opens (as a planted or damaged one would not): every reload of the ring fails.
      const [row] = db.all<{ kid: string; private_jwk: string }>("SELECT kid, private_jwk FROM signing_keys WHERE alg = 'RS256' AND state = 'current'");
      db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ?', ['not a sealed key', row?.kid ?? '']);
      at(KEY_RING_REFRESH_SECONDS * 1000);
      await expect(broker.keyUpkeep()).rejects.toThrow();

      // One round failed: the ring of a minute ago is still served, within the grace (75 s, as docs/operations/keys.md says).
      at(75_000 - 1000);
      expect((await exchange()).status).toBe(200);
      expect(await status('/readyz')).toBe(200);

      // Past it, a request tries the reload itself; it fails, so nothing is served from the stale ring.
      at(75_000);
      expect(await exchange()).toEqual({
        status: 503,
        retryAfter: '1',
        body: { error: 'temporarily_unavailable', error_description: 'the signing keys are unavailable' },
      });
      expect(await status('/.well-known/jwks.json')).toBe(503);
      expect(await status('/v1/health')).toBe(503);
      expect(await status('/readyz')).toBe(503);
      // Only those two paths as they are: one that merely ends with, starts with or spells one otherwise is a keyed route's.
      for (const path of ['/v1/audit/events/healthz', '/proxy/metrics', '/healthz/', '/HEALTHZ']) expect(await status(path), path).toBe(503);
      expect(log.text()).toContain('signing keys failed to load');
      // Nor does upkeep sign a checkpoint with it: it may hold a key withdrawn elsewhere.
      await broker.auditUpkeep();
      expect(log.text()).toContain('audit log upkeep skipped: the signing keys are unavailable');
      expect(signedHead()).toBe(false);
      // What reads no key still answers, so that the operator sees the outage: degraded, and the ring's age.
      expect(await health()).toEqual({ status: 200, body: { status: 'degraded' } });
      const metrics = await fetch(`${broker.url}/metrics`);
      expect(metrics.status).toBe(200);
      const exposed = await metrics.text();
      expect(exposed).toContain(`\nkeyway_signing_keys_age_seconds ${KEY_RING_SERVED_MS / 1000}\n`);
      // The skipped round counted by its class.
      expect(exposed).toContain('\nkeyway_audit_upkeep_failures_total{reason="signing_keys_unavailable"} 1\n');

      // The store answers again: the first request after the backoff reloads the ring, and the broker serves.
      db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ?', [row?.private_jwk ?? '', row?.kid ?? '']);
      at(75_000 + 1000);
      expect((await exchange()).status).toBe(200);
      expect(await status('/readyz')).toBe(200);
      expect(await health()).toEqual({ status: 200, body: { status: 'ok' } });
      await broker.auditUpkeep();
      expect(signedHead()).toBe(true);
    } finally {
      await close();
    }
  });

  it('reloads a ring too old to serve before its audit upkeep signs, when no request came to reload it', async () => {
    const { broker, db, at, close } = await clockedBroker({});
    try {
      // A record this process did not append (a command on the data dir), then a quiet spell past KEY_RING_SERVED_MS.
      const rotated = await runKeyway(['keys', 'rotate', '--data-dir', broker.config.dataDir], { KEYWAY_MASTER_KEY: undefined });
      expect(rotated.code, rotated.stderr).toBe(0);
      at(KEY_RING_SERVED_MS + 1000);
      await broker.auditUpkeep();
      expect(db.all('SELECT seq FROM audit_checkpoints WHERE seq = (SELECT MAX(seq) FROM audit_events)')).toHaveLength(1);
    } finally {
      await close();
    }
  }, 30_000);

  it('checks the age of its ring right before each signature, not only when an upkeep round starts: a round slow past KEY_RING_SERVED_MS signs no checkpoint with a key withdrawn meanwhile', async () => {
    const log = recordingLogger();
    const { broker, db, start, at, onRead, close } = await clockedBroker({}, log, { audit: readAuditSettings({ KEYWAY_AUDIT_RETENTION_DAYS: '1' }) });
    try {
      // Records a day old, which the round prunes after it signs the head: it signs an anchor then, the round's second signature.
      at(-86_400_000 - 60_000);
      for (let i = 0; i < 3; i += 1)
        expect((await fetch(`${broker.url}/token`, { method: 'POST', body: 'grant_type=password', headers: FORM })).status).toBe(400);
      // The ring loaded now (the real time, which the withdrawal's record is dated by), then the key withdrawn from the data dir.
      at(Date.now() - start);
      await broker.keyUpkeep();
      const [current] = db.all<{ kid: string }>("SELECT kid FROM signing_keys WHERE alg = 'ES256' AND state = 'current'");
      const withdrawn = await runKeyway(['keys', 'withdraw', '--data-dir', broker.config.dataDir, '--', current?.kid ?? ''], { KEYWAY_MASTER_KEY: undefined });
      expect(withdrawn.code, withdrawn.stderr).toBe(0);
      const [withdrawal] = db.all<{ time: number }>("SELECT time FROM audit_events WHERE reason = 'signing_key_withdrawn'");
      const withdrawnAt = withdrawal?.time ?? 0;
      // The round starts within KEY_RING_SERVED_MS of the load and signs the head at once; then its pruning takes long, past
      // KEY_RING_SERVED_MS after the withdrawal, before it signs the anchor.
      at(withdrawnAt + 5000 - start);
      const headSigned = () => db.all('SELECT seq FROM audit_checkpoints WHERE seq = (SELECT MAX(seq) FROM audit_events)').length === 1;
      onRead(() => {
        if (headSigned()) at(withdrawnAt + KEY_RING_SERVED_MS + 5000 - start);
      });
      await broker.auditUpkeep();
      onRead(() => {});
      expect(log.text()).not.toContain('upkeep failed');
      const anchors = db.all<{ jws: string }>('SELECT jws FROM audit_checkpoints WHERE seq = (SELECT MIN(seq) FROM audit_checkpoints)');
      expect(anchors.map(({ jws }) => decodeJwt(jws))).toEqual([
        expect.objectContaining({ role: 'anchor', iat: Math.floor((withdrawnAt + KEY_RING_SERVED_MS + 5000) / 1000) }),
      ]);
      const verified = await runKeyway(['audit', 'verify', '--json', '--data-dir', broker.config.dataDir], { KEYWAY_MASTER_KEY: undefined });
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
      expect(verified.code).toBe(0);
    } finally {
      await close();
    }
  }, 30_000);

  it('reloads its ring at a round whose life cycle step fails for a lock held past the busy timeout: the process stays ready', async () => {
    const { broker, db, at, close } = await clockedBroker({});
    try {
      at(KEY_RING_REFRESH_SECONDS * 1000);
      // Another connection holds the write lock: the leader's advanceKeys waits out the busy timeout and fails; reading the keys does not wait.
      db.exec('BEGIN IMMEDIATE');
      try {
        await expect(broker.keyUpkeep()).rejects.toThrow(/locked|busy/i);
      } finally {
        db.exec('ROLLBACK');
      }
      // No request came since: past KEY_RING_SERVED_MS from start-up, but not from that round.
      at(KEY_RING_REFRESH_SECONDS * 1000 + KEY_RING_SERVED_MS - 1000);
      expect((await fetch(`${broker.url}/readyz`)).status).toBe(200);
    } finally {
      await close();
    }
  }, 30_000);
});
