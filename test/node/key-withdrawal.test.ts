import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';
import { describe, expect, it } from 'vitest';
import { checkpointSigner } from '../../src/core/audit/sign-checkpoint.ts';
import { keyLifeCycle, KEY_RING_SERVED_MS } from '../../src/core/mint/key-life-cycle.ts';
import { signedInWithWithdrawnKey } from '../../src/core/revocation/examine-token.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { generateMasterKey, parseMasterKey, readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { MASTER_KEY_FILE } from '../../src/storage/master-key-file.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { readAuditSettings } from '../../src/core/audit/audit-settings.ts';
import { checkSchema, migrate } from '../../src/storage/migrate.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import type { BrokerClient } from '../suites/exchange-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';
import { runKeyway, testConfig, writeTree, type Environment } from './node-harness.ts';
import { operatedBroker as sharedOperatedBroker, recordingLogger } from './operated-broker.ts';

/** Tests that run the CLI as several processes: on a loaded machine each start takes seconds. */
const CLI_RUNS_TIMEOUT_MS = 90_000;

const cli = (args: string[], env: Environment = {}) => runKeyway(args, { KEYWAY_MASTER_KEY: undefined, ...env });

/** A broker whose operator olga@acme.dev holds the scopes these tests use, in tokens of 15 minutes. */
const operatedBroker = (clock?: () => number) =>
  sharedOperatedBroker({ olga: 'keys:read, keys:rotate, keys:withdraw, tokens:introspect, audit:read', ttl: '15m', ...(clock === undefined ? {} : { clock }) });

const kidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string }).kid;

/** What keyway's own checks make of `token` now: its operator API (GET /v1/keys) and its introspection. */
async function ownChecks(broker: NodeBroker, token: string, introspector: string): Promise<{ api: number; active: unknown }> {
  const api = (await fetch(`${broker.url}/v1/keys`, { headers: { authorization: `Bearer ${token}` } })).status;
  const introspected = await fetch(`${broker.url}/introspect`, {
    method: 'POST',
    headers: { authorization: `Bearer ${introspector}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  expect(introspected.status).toBe(200);
  return { api, active: ((await introspected.json()) as { active?: unknown }).active };
}

const published = async (broker: NodeBroker): Promise<string[]> =>
  ((await (await fetch(`${broker.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet).keys.map((key) => key.kid ?? '');

describe('keyway keys withdraw (a compromised signing key, taken out at once)', () => {
  it(
    'withdraws the current key from the data dir beside a running broker: refused without the master key, refused for an unknown kid, and its tokens refused once the broker reloads its ring',
    async () => {
      const { broker, tokenFor } = await operatedBroker();
      try {
        const dataDir = broker.config.dataDir;
        const leaked = await tokenFor('rita@acme.dev', 'keys:read');
        const kid = kidOf(leaked);
        const introspectorBefore = await tokenFor('olga@acme.dev', 'tokens:introspect');
        expect(await ownChecks(broker, leaked, introspectorBefore)).toEqual({ api: 200, active: true });

        // A master key that is not the broker's could seal no replacement the broker can open: nothing is withdrawn.
        const wrong = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', kid], { KEYWAY_MASTER_KEY: generateMasterKey() });
        expect(wrong).toMatchObject({ code: 1, stderr: expect.stringContaining('nothing was withdrawn') });
        const unknown = await cli(['keys', 'withdraw', 'no-such-kid', '--data-dir', dataDir]);
        expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('holds no signing key no-such-kid') });
        expect((await cli(['keys', 'withdraw', '--data-dir', dataDir])).code).toBe(2);
        expect(await published(broker)).toContain(kid);

        const withdrawn = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', kid]);
        expect(withdrawn.code, withdrawn.stderr).toBe(0);
        expect(withdrawn.stdout).toContain(`withdrew signing key ${kid} (ES256)`);
        expect(withdrawn.stdout).toMatch(/a fresh key \S+ signs in its place now; relying parties .* up to 5 minutes/);
        // Recorded in the broker's own audit log, with the broker's MAC (verified below, once the broker appended after it).
        const recorded = await cli(['audit', 'query', '--reason', 'signing_key_withdrawn', '--json', '--data-dir', dataDir]);
        const [record, ...others] = (JSON.parse(recorded.stdout) as { events: Record<string, unknown>[] }).events;
        expect(others).toEqual([]);
        expect(record).toMatchObject({
          decision: 'granted',
          detail: expect.stringMatching(
            new RegExp(
              `^withdrew signing key ${kid} \\(ES256\\) for a keyway command on the data directory, run by .* on \\S+; transitions: withdraw ${kid}, publish `,
            ),
          ),
        });
        expect(record).not.toHaveProperty('subject');

        // Another process withdrew it: this one sees it at its next reload of the ring, at most a minute away (the key timer's round).
        await broker.keyUpkeep();
        expect(await published(broker)).not.toContain(kid);
        const introspector = await tokenFor('olga@acme.dev', 'tokens:introspect');
        expect(kidOf(introspector)).not.toBe(kid);
        expect(await ownChecks(broker, leaked, introspector)).toEqual({ api: 401, active: false });

        // Again: nothing changes, and it says so. The list shows when it was withdrawn.
        const again = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', kid]);
        expect(again).toMatchObject({ code: 0, stdout: expect.stringContaining(`signing key ${kid} was withdrawn already at`) });
        const listed = JSON.parse((await cli(['keys', 'list', '--json', '--data-dir', dataDir])).stdout) as { keys: { kid: string; withdrawn_at?: string }[] };
        const shown = listed.keys.find((key) => key.kid === kid);
        expect(shown).toMatchObject({ state: 'removed', withdrawn_at: expect.any(String), unpublished_at: shown?.withdrawn_at });
        const table = (await cli(['keys', 'list', '--data-dir', dataDir])).stdout.split('\n');
        expect(table[0]).toMatch(/unpublished \(due\)\s+withdrawn$/);
        expect(table.find((line) => line.startsWith(kid))).toMatch(new RegExp(`^${kid}\\s+removed\\s.*${shown?.withdrawn_at}$`));
        // The broker's writer went on from the record the command appended: one chain, every MAC the broker's.
        const verified = await cli(['audit', 'verify', '--macs', '--json', '--data-dir', dataDir]);
        expect(verified.code, verified.stderr).toBe(0);
        expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, records: expect.any(Number) });
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'withdraws remotely with keys:withdraw (401 without a token, 403 without the scope), logs who did, and the serving process refuses its tokens at once',
    async () => {
      const { broker, log, tokenFor } = await operatedBroker();
      try {
        const remote = ['--url', broker.url];
        const rita = await tokenFor('rita@acme.dev', 'keys:read');
        const olga = await tokenFor('olga@acme.dev', 'keys:withdraw');
        const kid = kidOf(rita);

        expect(await cli(['keys', 'withdraw', ...remote, '--', kid], { KEYWAY_TOKEN: rita })).toMatchObject({
          code: 1,
          stderr: expect.stringContaining('403 insufficient_scope'),
        });
        expect((await fetch(`${broker.url}/v1/keys/withdraw`, { method: 'POST', body: JSON.stringify({ kid }) })).status).toBe(401);
        expect((await cli(['keys', 'withdraw', ...remote, '--', kid])).code).toBe(2);
        const unknown = await cli(['keys', 'withdraw', 'no-such-kid', ...remote], { KEYWAY_TOKEN: olga });
        expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('404 not_found') });
        const malformed = await fetch(`${broker.url}/v1/keys/withdraw`, {
          method: 'POST',
          headers: { authorization: `Bearer ${olga}`, 'content-type': 'application/json' },
          body: JSON.stringify({ kid: 7 }),
        });
        expect(malformed.status).toBe(400);
        expect(await malformed.json()).toMatchObject({ error: 'invalid_request' });
        expect(await published(broker)).toContain(kid);

        const withdrawn = await cli(['keys', 'withdraw', ...remote, '--json', '--', kid], { KEYWAY_TOKEN: olga });
        expect(withdrawn.code, withdrawn.stderr).toBe(0);
        const answer = JSON.parse(withdrawn.stdout) as { status: string; key: object; transitions: { kind: string; kid: string }[]; current: { kid: string } };
        expect(answer).toMatchObject({ status: 'withdrawn', key: { kid, state: 'removed', withdrawn_at: expect.any(String) }, current: { state: 'current' } });
        expect(answer.transitions).toEqual([
          { kind: 'withdraw', kid },
          { kind: 'publish', kid: answer.current.kid, activatesAt: expect.any(Number) },
          { kind: 'activate', kid: answer.current.kid },
        ]);
        expect(log.text()).toContain('signing key withdrawal requested');
        expect(log.text()).toContain('olga@acme.dev');

        // No reload to wait for: the process that withdrew it reloaded its ring.
        expect(await published(broker)).not.toContain(kid);
        expect(await published(broker)).toContain(answer.current.kid);
        const introspector = await tokenFor('olga@acme.dev', 'tokens:introspect');
        expect(await ownChecks(broker, rita, introspector)).toEqual({ api: 401, active: false });
        // Olga's own token was signed by the withdrawn key too: a new one says it is withdrawn already.
        const again = await cli(['keys', 'withdraw', ...remote, '--', kid], { KEYWAY_TOKEN: await tokenFor('olga@acme.dev', 'keys:withdraw') });
        expect(again).toMatchObject({ code: 0, stdout: expect.stringContaining(`signing key ${kid} was withdrawn already at`) });
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe('an /audit page session signed in with a token of a key withdrawn since', () => {
  it('is over once that key is withdrawn, though the session was signed by another key: for the page and /introspect alike', async () => {
    let now = Date.now();
    const { broker, tokenFor } = await operatedBroker(() => now);
    try {
      const page: BrokerClient = { issuer: broker.config.issuer, request: (path, init) => fetch(`${broker.url}${path}`, init) };
      // The token of a key that becomes retired: one a thief holding that key's private part could have signed.
      const auditor = await tokenFor('olga@acme.dev', 'audit:read');
      const kid = kidOf(auditor);
      await broker.keyUpkeep({ rotate: true });
      now += keyLifeCycle({ rotationDays: 0 }, 0).leadMs;
      await broker.keyUpkeep();
      expect(await published(broker)).toContain(kid);
      const cookie = await pageCookie(page, auditor);
      const session = cookie.slice(cookie.indexOf('=') + 1);
      expect(kidOf(session)).not.toBe(kid);
      expect((await page.request('/audit', { headers: { cookie } })).status).toBe(200);
      const introspector = await tokenFor('olga@acme.dev', 'tokens:introspect');
      expect(await ownChecks(broker, session, introspector)).toMatchObject({ active: true });

      const withdrawn = await fetch(`${broker.url}/v1/keys/withdraw`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor('olga@acme.dev', 'keys:withdraw')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kid }),
      });
      expect(withdrawn.status).toBe(200);
      const refused = await page.request('/audit', { headers: { cookie } });
      expect(refused.status).toBe(401);
      expect(await refused.text()).toContain('The session is over');
      expect(await ownChecks(broker, session, introspector)).toMatchObject({ active: false });
    } finally {
      await broker.close();
    }
  });
});

describe('the key an /audit page session names', () => {
  it('ends a session that names none (one started before sessions named it) or one the broker no longer publishes; any other token is not one', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
    expect(await signedInWithWithdrawnKey(keys, { src_jti: 'j' })).toMatch(/does not name the key/);
    expect(await signedInWithWithdrawnKey(keys, { src_jti: 'j', src_kid: 7 })).toMatch(/does not name the key/);
    expect(await signedInWithWithdrawnKey(keys, { src_jti: 'j', src_kid: 'k0' })).toMatch(/signed by key k0, which the broker no longer publishes/);
    expect(await signedInWithWithdrawnKey(keys, { src_jti: 'j', src_kid: 'k1' })).toBeUndefined();
    expect(await signedInWithWithdrawnKey(keys, { sub: 'svc' })).toBeUndefined();
  });
});

describe("the audit records of an operator's work on the signing keys", () => {
  it(
    'records each rotation and withdrawal through the API (who, which key, what came of it) before answering; audit verify passes; a withdrawal whose record cannot be written is done, and answered 503',
    async () => {
      const { broker, tokenFor } = await operatedBroker();
      try {
        const dataDir = broker.config.dataDir;
        const post = async (path: string, token: string, body?: object) => {
          const response = await fetch(`${broker.url}${path}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
          return { status: response.status, body: (await response.json()) as Record<string, unknown> };
        };
        const recordsOf = async (reason: string) => {
          const queried = await cli(['audit', 'query', '--reason', reason, '--json', '--data-dir', dataDir]);
          expect(queried.code, queried.stderr).toBe(0);
          return (JSON.parse(queried.stdout) as { events: Record<string, unknown>[] }).events;
        };
        const olga = (scope: string) => tokenFor('olga@acme.dev', scope);

        const rotated = await post('/v1/keys/rotate', await olga('keys:rotate'));
        expect(rotated.status).toBe(200);
        const next = (rotated.body['next'] as { kid: string }).kid;
        const withdrawer = await olga('keys:withdraw');
        const kid = kidOf(withdrawer);
        const withdrawn = await post('/v1/keys/withdraw', withdrawer, { kid });
        expect(withdrawn.status).toBe(200);
        const again = await post('/v1/keys/withdraw', await olga('keys:withdraw'), { kid });
        expect(again.body).toMatchObject({ status: 'already_removed' });
        // A kid the broker never held changes nothing, and is not recorded.
        expect((await post('/v1/keys/withdraw', await olga('keys:withdraw'), { kid: 'no-such-kid' })).status).toBe(404);

        // The operator as the broker's tokens name it: the issuer of its own token, then its subject.
        const operator = { decision: 'granted', issuer: broker.config.issuer, subject: expect.stringMatching(/#olga@acme\.dev$/) };
        expect(await recordsOf('signing_key_rotation_requested')).toEqual([
          expect.objectContaining({
            ...operator,
            detail: expect.stringMatching(
              new RegExp(
                `^rotation of the signing keys requested by operator \\S+#olga@acme\\.dev .*transitions: publish ${next} \\(signs from \\S+\\), publish \\S+ \\(signs from \\S+\\)$`,
              ),
            ),
          }),
        ]);
        const withdrawals = await recordsOf('signing_key_withdrawn');
        // The key and when it was withdrawn, as the store says, in a member of their own: what audit verify reads.
        const signing_key = { kid, alg: 'ES256', withdrawn_at: (withdrawn.body['key'] as { withdrawn_at: string }).withdrawn_at };
        expect(signing_key.withdrawn_at).toMatch(/^\d{4}-\d\d-\d\dT/);
        expect(withdrawals).toEqual([
          expect.objectContaining({
            ...operator,
            signing_key,
            detail: expect.stringMatching(
              new RegExp(`^signing key ${kid} \\(ES256\\) was withdrawn already at .*: nothing changed; asked by operator \\S+#olga@acme\\.dev`),
            ),
          }),
          expect.objectContaining({
            ...operator,
            signing_key,
            detail: expect.stringMatching(
              new RegExp(
                `^withdrew signing key ${kid} \\(ES256\\) for operator \\S+#olga@acme\\.dev \\(policy ops/olga, token \\S+\\); transitions: withdraw ${kid}, activate ${next}$`,
              ),
            ),
          }),
        ]);
        expect(JSON.stringify(withdrawals)).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
        const verified = await cli(['audit', 'verify', '--json', '--data-dir', dataDir]);
        expect(verified.code, verified.stderr).toBe(0);
        expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });

        // The audit log refuses the record: the key is withdrawn all the same (first), and the answer says it was not recorded.
        const keys = (await (await fetch(`${broker.url}/v1/keys`, { headers: { authorization: `Bearer ${await olga('keys:read')}` } })).json()) as {
          keys: { kid: string; alg: string; state: string }[];
        };
        const rsa = keys.keys.find((key) => key.alg === 'RS256' && key.state === 'current')?.kid ?? '';
        const withdrawerOfRsa = await olga('keys:withdraw');
        const rotator = await olga('keys:rotate');
        const db = openSqliteFile(join(dataDir, DATABASE_FILE), { existing: true });
        let unrecorded: Awaited<ReturnType<typeof post>>;
        let rotatedUnrecorded: Awaited<ReturnType<typeof post>>;
        let local: Awaited<ReturnType<typeof cli>>;
        try {
          db.exec(
            "CREATE TRIGGER key_audit_down BEFORE INSERT ON audit_events WHEN NEW.reason LIKE 'signing_key_%' BEGIN SELECT RAISE(ABORT, 'down for the test'); END",
          );
          unrecorded = await post('/v1/keys/withdraw', withdrawerOfRsa, { kid: rsa });
          rotatedUnrecorded = await post('/v1/keys/rotate', rotator);
          local = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', next]);
        } finally {
          db.exec('DROP TRIGGER key_audit_down');
          db.close();
        }
        expect(unrecorded.status).toBe(503);
        expect(unrecorded.body).toEqual({
          error: 'temporarily_unavailable',
          error_description: expect.stringMatching(/^the key was withdrawn, but the audit log is unavailable/),
        });
        expect(await published(broker)).not.toContain(rsa);
        expect(rotatedUnrecorded).toEqual({
          status: 503,
          body: { error: 'temporarily_unavailable', error_description: expect.stringMatching(/^the rotation was started, but the audit log is unavailable/) },
        });
        // The data dir's form says so too, by its exit code: the key is withdrawn all the same.
        expect(local).toMatchObject({ code: 1, stderr: expect.stringContaining(`withdrew signing key ${next}, but its audit record could not be written`) });
        const listed = JSON.parse((await cli(['keys', 'list', '--json', '--data-dir', dataDir])).stdout) as { keys: { kid: string; state: string }[] };
        expect(listed.keys.find((key) => key.kid === next)?.state).toBe('removed');
        expect(await recordsOf('signing_key_withdrawn')).toHaveLength(2);
        expect(await recordsOf('signing_key_rotation_requested')).toHaveLength(1);
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe('keyway audit verify and a withdrawn signing key', () => {
  it(
    "fails a checkpoint its thief signed with it: dated past the time a broker's ring may still sign with it, or backdated before the withdrawal it signs; --data-dir and --url alike, and one kept apart (--checkpoints)",
    async () => {
      const { broker, tokenFor } = await operatedBroker();
      const dataDir = broker.config.dataDir;
      const db = openSqliteFile(join(dataDir, DATABASE_FILE), { existing: true });
      try {
        const master = readMasterKeys({ KEYWAY_MASTER_KEY: readFileSync(join(dataDir, MASTER_KEY_FILE), 'utf8').trim() }) as MasterKeys;
        // What a stolen backup and its master key give away: the current private key.
        const stolen = await KeyRing.from(await new SqliteKeyStore(db, await SecretBox.fromMasterKeys(master)).listKeys());
        const kid = stolen.signing.kid;
        const reader = await tokenFor('olga@acme.dev', 'audit:read');
        expect((await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', kid])).code).toBe(0);
        const [withdrawal] = db.all<{ seq: number }>("SELECT seq FROM audit_events WHERE reason = 'signing_key_withdrawn'");
        // When the store withdrew it, as the record names it (signing_key.withdrawn_at): a little before the record's own time.
        const [key] = db.all<{ withdrawn_at: number }>('SELECT withdrawn_at FROM signing_keys WHERE kid = ?', [kid]);
        const at = key?.withdrawn_at ?? 0;
        await tokenFor('rita@acme.dev', 'keys:read');
        const audit = new SqliteAuditStore(db);
        const verdicts = async () =>
          Promise.all(
            [
              ['--data-dir', dataDir],
              ['--url', broker.url],
            ].map(async (source) => {
              const verified = await cli(['audit', 'verify', '--json', ...source], { KEYWAY_TOKEN: reader });
              return { code: verified.code, report: JSON.parse(verified.stdout) as { ok: boolean; problem?: object } };
            }),
          );
        /** The thief's checkpoint of record `seq`, dated `time`: the verdicts of the log with it, then the log without it. */
        const forged = async (seq: number, time: number) => {
          const [record] = db.all<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = ?', [seq]);
          await audit.addCheckpoint(
            await checkpointSigner(
              broker.config.issuer,
              () => stolen,
              () => time,
            )({ seq, hash: record?.hash ?? '' }),
          );
          try {
            return await verdicts();
          } finally {
            db.run('DELETE FROM audit_checkpoints WHERE seq = ?', [seq]);
          }
        };
        const refused = (seq: number, why: RegExp) => ({
          code: 1,
          report: {
            ok: false,
            withdrawn_keys: [{ kid, seq: withdrawal?.seq, time: new Date(at).toISOString() }],
            problem: { kind: 'checkpoint_key_withdrawn', seq, kid, message: expect.stringMatching(why) },
          },
        });
        const seq = withdrawal?.seq ?? 0;
        expect(seq).toBeGreaterThan(1);

        // A broker process whose ring was loaded before the withdrawal signs with the key until it reloads: that is allowed.
        for (const verdict of await forged(seq + 1, at + 30_000)) expect(verdict).toMatchObject({ code: 0, report: { ok: true } });
        // Past that, before the withdrawal's record as after it: only the key's thief signs with it.
        for (const before of [true, false]) {
          const verdicts = await forged(before ? seq - 1 : seq + 1, at + KEY_RING_SERVED_MS + 2000);
          for (const verdict of verdicts) expect(verdict).toMatchObject(refused(before ? seq - 1 : seq + 1, /past the 75 s a broker may still sign with it$/));
        }
        // Dated before the withdrawal, which it signs, by more than a broker's round may date it early: backdated. Before the
        // record it signs no withdrawal, and it stands.
        const backdated = at - KEY_RING_SERVED_MS - 5000;
        for (const verdict of await forged(seq, backdated))
          expect(verdict).toMatchObject(refused(seq, /signs the record of that key's withdrawal .* it is backdated, more than 75 s before it$/));
        for (const verdict of await forged(seq - 1, backdated)) expect(verdict).toMatchObject({ code: 0, report: { ok: true } });
        // Dated a little before it, as a Workers Cron round dates what it signs at its scheduled time: no thief's work.
        for (const verdict of await forged(seq, at - 5000)) expect(verdict).toMatchObject({ code: 0, report: { ok: true } });
        // A checkpoint kept apart (--checkpoints) that the log does not hold is held to the withdrawal all the same.
        const [record] = db.all<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = ?', [seq - 1]);
        const kept = join(mkdtempSync(join(tmpdir(), 'keyway-kept-withdrawn-')), 'kept-checkpoint.json');
        const late = at + KEY_RING_SERVED_MS + 2000;
        writeFileSync(
          kept,
          JSON.stringify(
            await checkpointSigner(
              broker.config.issuer,
              () => stolen,
              () => late,
            )({ seq: seq - 1, hash: record?.hash ?? '' }),
          ),
        );
        const verified = await cli(['audit', 'verify', '--json', '--data-dir', dataDir, '--checkpoints', kept]);
        expect({ code: verified.code, report: JSON.parse(verified.stdout) as object }).toMatchObject(
          refused(seq - 1, /past the 75 s a broker may still sign with it$/),
        );
      } finally {
        db.close();
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe('keyway audit verify and a withdrawn key whose record retention pruned', () => {
  /**
   * A broker that prunes after a day, with its current key withdrawn (`kid`, at `at`), as a thief who stole that key and
   * can write the database has it: `thiefSigns` appends a record and signs the head with the stolen key, and `verify` runs
   * `keyway audit verify` on the data directory. `forget` takes the withdrawal out of the key store, as that thief may.
   */
  async function withdrawnAndStolen(
    test: (log: {
      readonly db: ReturnType<typeof openSqliteFile>;
      readonly kid: string;
      readonly at: number;
      readonly upkeepAt: (time: number) => Promise<void>;
      readonly forget: () => void;
      readonly thiefSigns: () => Promise<number>;
      readonly verify: () => Promise<{ report: unknown; code: number | null }>;
    }) => Promise<void>,
  ): Promise<void> {
    const root = writeTree({});
    mkdirSync(join(root, 'policies'), { recursive: true });
    let clock = Date.now();
    const broker = await startNodeBroker(testConfig(root, { audit: readAuditSettings({ KEYWAY_AUDIT_RETENTION_DAYS: '1' }) }), {
      log: recordingLogger(),
      now: () => clock,
    });
    const dataDir = broker.config.dataDir;
    const db = openSqliteFile(join(dataDir, DATABASE_FILE), { existing: true });
    try {
      const master = readMasterKeys({ KEYWAY_MASTER_KEY: readFileSync(join(dataDir, MASTER_KEY_FILE), 'utf8').trim() }) as MasterKeys;
      const stolen = await KeyRing.from(await new SqliteKeyStore(db, await SecretBox.fromMasterKeys(master)).listKeys());
      const kid = stolen.signing.kid;
      expect((await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', kid])).code).toBe(0);
      const [key] = db.all<{ withdrawn_at: number }>('SELECT withdrawn_at FROM signing_keys WHERE kid = ?', [kid]);
      // A record to prune next time: a request refused now.
      const request = async () =>
        expect(
          (
            await fetch(`${broker.url}/token`, {
              method: 'POST',
              body: 'grant_type=password',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
            })
          ).status,
        ).toBe(400);
      await test({
        db,
        kid,
        at: key?.withdrawn_at ?? 0,
        upkeepAt: async (time) => {
          clock = time;
          await broker.auditUpkeep();
          await request();
        },
        forget: () => db.run('UPDATE signing_keys SET withdrawn_at = NULL WHERE kid = ?', [kid]),
        thiefSigns: async () => {
          await request();
          const [head] = db.all<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
          const sign = checkpointSigner(
            broker.config.issuer,
            () => stolen,
            () => clock,
          );
          await new SqliteAuditStore(db).addCheckpoint(await sign({ seq: head?.seq ?? 0, hash: head?.hash ?? '' }));
          return head?.seq ?? 0;
        },
        verify: async () => {
          const verified = await cli(['audit', 'verify', '--json', '--data-dir', dataDir]);
          return { report: JSON.parse(verified.stdout) as unknown, code: verified.code };
        },
      });
    } finally {
      db.close();
      await broker.close();
    }
  }

  const anchorSeq = (db: ReturnType<typeof openSqliteFile>) => db.all<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY seq LIMIT 1')[0]?.seq;
  const DAY_MS = 86_400_000;

  it(
    'fails a checkpoint its thief signed with it after the record: the anchor pruning left names the withdrawal',
    () =>
      withdrawnAndStolen(async ({ db, kid, at, upkeepAt, thiefSigns, verify }) => {
        await upkeepAt(at + DAY_MS + 600_000);
        expect(db.all("SELECT seq FROM audit_events WHERE reason = 'signing_key_withdrawn'")).toEqual([]);
        const anchor = anchorSeq(db);
        const forged = await thiefSigns();
        expect(forged).toBeGreaterThan(anchor ?? 0);
        expect(await verify()).toMatchObject({
          code: 1,
          report: {
            ok: false,
            anchor,
            withdrawn_keys: [{ kid, seq: anchor, time: new Date(at).toISOString(), pruned: true }],
            problem: { kind: 'checkpoint_key_withdrawn', seq: forged, kid, message: expect.stringMatching(/past the 75 s a broker may still sign with it$/) },
          },
        });
      }),
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    "names a withdrawal the key store lost before pruning, from the withdrawal's record it prunes",
    () =>
      withdrawnAndStolen(async ({ db, kid, at, upkeepAt, forget, thiefSigns, verify }) => {
        forget();
        await upkeepAt(at + DAY_MS + 600_000);
        expect(db.all("SELECT seq FROM audit_events WHERE reason = 'signing_key_withdrawn'")).toEqual([]);
        const anchor = anchorSeq(db);
        const forged = await thiefSigns();
        expect(await verify()).toMatchObject({
          code: 1,
          report: {
            ok: false,
            anchor,
            withdrawn_keys: [{ kid, seq: anchor, time: new Date(at).toISOString(), pruned: true }],
            problem: { kind: 'checkpoint_key_withdrawn', seq: forged, kid },
          },
        });
      }),
    CLI_RUNS_TIMEOUT_MS,
  );

  it(
    'names a withdrawal the key store lost after an anchor named it, from that anchor, once it is pruned in turn',
    () =>
      withdrawnAndStolen(async ({ db, kid, at, upkeepAt, forget, thiefSigns, verify }) => {
        await upkeepAt(at + DAY_MS + 600_000);
        const first = anchorSeq(db);
        forget();
        await upkeepAt(at + 2 * DAY_MS + 1_200_000);
        const anchor = anchorSeq(db);
        expect(anchor).toBeGreaterThan(first ?? 0);
        const forged = await thiefSigns();
        expect(await verify()).toMatchObject({
          code: 1,
          report: {
            ok: false,
            anchor,
            withdrawn_keys: [{ kid, seq: anchor, time: new Date(at).toISOString(), pruned: true }],
            problem: { kind: 'checkpoint_key_withdrawn', seq: forged, kid },
          },
        });
      }),
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe("a signing key operation from the data dir with a master key that is not the broker's current one", () => {
  it(
    'changes and records nothing, whatever the key it names: a record MACed under another master key would leave every later checkpoint unsigned, and a key sealed under one every ring reload failing',
    async () => {
      const { broker, log } = await operatedBroker();
      try {
        const dataDir = broker.config.dataDir;
        const brokers = readFileSync(join(dataDir, MASTER_KEY_FILE), 'utf8').trim();
        const records = async () => {
          const queried = await cli(['audit', 'query', '--json', '--data-dir', dataDir]);
          return (JSON.parse(queried.stdout) as { events: unknown[] }).events.length;
        };
        const rotated = await cli(['keys', 'rotate', '--json', '--data-dir', dataDir]);
        expect(rotated.code, rotated.stderr).toBe(0);
        const next = (JSON.parse(rotated.stdout) as { next: { kid: string } }).next.kid;
        // Another master key; and one the broker does not have, given as current with the broker's as previous (its change begun in the shell alone).
        for (const env of [{ KEYWAY_MASTER_KEY: generateMasterKey() }, { KEYWAY_MASTER_KEY: generateMasterKey(), KEYWAY_MASTER_KEY_PREVIOUS: brokers }]) {
          const before = await records();
          // A rotation that only brings the pending next keys forward, which seals nothing.
          expect(await cli(['keys', 'rotate', '--data-dir', dataDir], env)).toMatchObject({ code: 1, stderr: expect.stringContaining('nothing was rotated') });
          expect(await records()).toBe(before);
        }
        expect((await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', next])).code).toBe(0);
        const before = await records();
        // A withdrawal of a key removed already, which seals nothing either.
        const again = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', next], { KEYWAY_MASTER_KEY: generateMasterKey() });
        expect(again).toMatchObject({ code: 1, stderr: expect.stringContaining('nothing was withdrawn') });
        // The broker's own is held to that too: after a new key, in place of the one that sealed the keys, is given with it as previous.
        const replaced = await cli(['keys', 'withdraw', '--data-dir', dataDir, '--', next], {
          KEYWAY_MASTER_KEY: generateMasterKey(),
          KEYWAY_MASTER_KEY_PREVIOUS: brokers,
        });
        expect(replaced).toMatchObject({ code: 1, stderr: expect.stringContaining('nothing was withdrawn') });
        expect(await records()).toBe(before);

        await broker.keyUpkeep();
        await broker.auditUpkeep();
        expect(log.text()).not.toContain('upkeep failed');
        const verified = await cli(['audit', 'verify', '--macs', '--json', '--data-dir', dataDir]);
        expect(verified.code, verified.stdout).toBe(0);
        expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, checkpoints: expect.any(Number) });
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe('a signing key operation whose store or ring fails', () => {
  it('answers 503 with nothing changed when the key store fails, and records a withdrawal whose serving ring did not reload at once', async () => {
    const { broker, tokenFor } = await operatedBroker();
    const db = openSqliteFile(join(broker.config.dataDir, DATABASE_FILE), { existing: true });
    try {
      const post = async (path: string, body?: object) => {
        const scope = path.endsWith('rotate') ? 'keys:rotate' : 'keys:withdraw';
        const response = await fetch(`${broker.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${await tokenFor('olga@acme.dev', scope)}`, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const withdrawals = () =>
        db.all<{ detail: string }>("SELECT json_extract(event, '$.detail') AS detail FROM audit_events WHERE reason = 'signing_key_withdrawn'");
      const current = await tokenFor('olga@acme.dev', 'keys:read');
      const kid = kidOf(current);

      // Every write to the key table fails (a disk error, a lock held past the busy timeout): rolled back, answered 503.
      db.exec("CREATE TRIGGER keys_down_update BEFORE UPDATE ON signing_keys BEGIN SELECT RAISE(ABORT, 'down for the test'); END");
      db.exec("CREATE TRIGGER keys_down_insert BEFORE INSERT ON signing_keys BEGIN SELECT RAISE(ABORT, 'down for the test'); END");
      try {
        for (const [path, nothing, body] of [
          ['/v1/keys/withdraw', 'withdrawn', { kid }],
          ['/v1/keys/rotate', 'rotated', undefined],
        ] as const) {
          expect(await post(path, body)).toEqual({
            status: 503,
            body: { error: 'temporarily_unavailable', error_description: `the signing key store is unavailable: nothing was ${nothing}; retry later` },
          });
        }
      } finally {
        db.exec('DROP TRIGGER keys_down_update');
        db.exec('DROP TRIGGER keys_down_insert');
      }
      expect(await published(broker)).toContain(kid);
      expect(withdrawals()).toEqual([]);

      // The other ring's current key no longer opens, so the serving process cannot reload its ring after the withdrawal:
      // the withdrawal stands, and its record says the ring was not reloaded.
      const [rsa] = db.all<{ kid: string; private_jwk: string }>("SELECT kid, private_jwk FROM signing_keys WHERE alg = 'RS256' AND state = 'current'");
      db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ?', ['not a sealed key', rsa?.kid ?? '']);
      const withdrawn = await post('/v1/keys/withdraw', { kid });
      db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ?', [rsa?.private_jwk ?? '', rsa?.kid ?? '']);
      expect(withdrawn).toMatchObject({ status: 200, body: { status: 'withdrawn', key: { kid, state: 'removed' } } });
      expect(withdrawals()).toEqual([
        {
          detail: expect.stringMatching(
            new RegExp(`^withdrew signing key ${kid} .*; the serving process's key ring did not reload at once \\(.+\\), and does at its next reload$`),
          ),
        },
      ]);
    } finally {
      db.close();
      await broker.close();
    }
  });
});

describe('the upgrade to schema 24 (withdrawn keys)', () => {
  it('keeps the keys of before as they were (a removed key was not withdrawn), and withdraws one after it', async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-withdrawn-')), DATABASE_FILE));
    try {
      migrate(db, 23);
      const store = new SqliteKeyStore(db, await SecretBox.fromMasterKeys({ current: parseMasterKey(generateMasterKey(), 'KEYWAY_MASTER_KEY'), previous: [] }));
      const start = Date.now() - 3_600_000;
      const cycle = keyLifeCycle({ rotationDays: 0 }, 0);
      const first = await KeyRing.open(store, start);
      // A whole rotation, its old key removed by upkeep.
      await store.advanceKeys({ now: start, cycle, rotate: true, upkeep: false });
      await store.advanceKeys({ now: start + cycle.leadMs, cycle, rotate: false, upkeep: true });
      await store.advanceKeys({ now: start + cycle.leadMs + cycle.retainMs, cycle, rotate: false, upkeep: true });
      expect((await store.describeKeys()).find((key) => key.kid === first.signing.kid)?.state).toBe('removed');

      migrate(db, 24);
      expect(checkSchema(db)).toBe(24);
      const keys = await store.describeKeys();
      expect(keys.find((key) => key.kid === first.signing.kid)).not.toHaveProperty('withdrawnAt');
      const current = keys.find((key) => key.state === 'current' && key.alg === 'ES256')?.kid ?? '';
      expect(await store.withdrawKey(current, Date.now())).toMatchObject({ status: 'withdrawn', key: { withdrawnAt: expect.any(Number) } });
      expect((await KeyRing.from(await store.listKeys())).signing.kid).not.toBe(current);
    } finally {
      db.close();
    }
  });
});
