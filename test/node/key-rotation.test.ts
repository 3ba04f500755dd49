import { chownSync, readFileSync, renameSync, statSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Hono } from 'hono';
import { createRemoteJWKSet, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keywayAuth, verifyAccessToken, type KeywayAuthVariables } from '../../src/index.ts';
import { loadNodeMasterKeys, MASTER_KEY_FILE } from '../../src/storage/master-key-file.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { generateMasterKey, parseMasterKey, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox, SecretBoxError } from '../../src/core/secrets/secret-box.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { keyLifeCycle, readKeySettings } from '../../src/core/mint/key-life-cycle.ts';
import type { KeyTransition, StoredSigningKey } from '../../src/core/mint/key-store.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, runKeyway, testConfig, writeTree, type Environment } from './node-harness.ts';
import { operatedBroker, recordingLogger } from './operated-broker.ts';

const SERVICE = 'https://deploy.acme.dev';
const MINUTE = 60_000;
/** Tests that run the CLI as several processes: on a loaded machine each start takes seconds. */
const CLI_RUNS_TIMEOUT_MS = 60_000;

const cli = (args: string[], env: Environment = {}) => runKeyway(args, { KEYWAY_MASTER_KEY: undefined, ...env });

/** Every private key's `d`, read with the data dir's master key. */
async function privateParts(dataDir: string, master?: MasterKeys): Promise<StoredSigningKey[]> {
  const db = openSqliteFile(join(dataDir, DATABASE_FILE));
  try {
    return await new SqliteKeyStore(db, await SecretBox.fromMasterKeys(master ?? loadNodeMasterKeys({}, dataDir, recordingLogger()))).listKeys();
  } finally {
    db.close();
  }
}

/** The database file and its WAL, as bytes on disk. */
const onDisk = (dataDir: string): string =>
  ['', '-wal']
    .map((suffix) => join(dataDir, DATABASE_FILE + suffix))
    .filter((path) => existsSync(path))
    .map((path) => readFileSync(path).toString('latin1'))
    .join('');

const policy = (issuerUrl: string) => `
version: 1
issuer: { kind: github, url: "${issuerUrl}" }
match: { repository_id: "734201" }
grant: { audience: [${SERVICE}], scopes: [deploy:write], ttl: 30m }
`;

describe('signing key rotation on the Node broker (real HTTP, real SQLite file, injected clock)', () => {
  let issuer: TestIssuer;
  let broker: NodeBroker;
  let root: string;
  const log = recordingLogger();
  // The broker's clock starts in the past, so tokens it mints before and after a rotation are
  // still live for relying parties that check them with the real clock.
  let clock = Date.now() - 15 * MINUTE;
  const cycle = keyLifeCycle(readKeySettings({}), 3600);

  async function exchange(): Promise<string> {
    const seconds = Math.floor(clock / 1000);
    const subject = await issuer.sign(ciClaims(issuer.url, broker.config.issuer, { iat: seconds, nbf: seconds - 5, exp: seconds + 300 }));
    const response = await fetch(`${broker.url}/token`, {
      method: 'POST',
      body: exchangeForm(subject, { audience: SERVICE }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = (await response.json()) as { access_token?: string };
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body.access_token ?? '';
  }
  const kidOf = (token: string): string => (JSON.parse(atob(token.split('.')[0]?.replaceAll('-', '+').replaceAll('_', '/') ?? '')) as { kid: string }).kid;
  /** The kids published at `path` of one algorithm: the ES256 ring signs keyway's tokens, the RS256 ring (for Entra) runs the same life cycle beside it. */
  const published = async (path = '/.well-known/jwks.json', alg = 'ES256'): Promise<string[]> =>
    ((await (await fetch(`${broker.url}${path}`)).json()) as JSONWebKeySet).keys.filter((key) => key.alg === alg).map((key) => key.kid ?? '');
  /** The transitions of one ring, and the other ring's, which must be the same kinds at the same times. */
  const byRing = async (transitions: readonly KeyTransition[]) => {
    const rsa = new Set(await published('/v1/audit/keys', 'RS256'));
    const ec = transitions.filter((transition) => !rsa.has(transition.kid));
    expect(transitions.filter((transition) => rsa.has(transition.kid)).map(({ kid: _, ...rest }) => rest)).toEqual(ec.map(({ kid: _, ...rest }) => rest));
    return ec;
  };

  beforeAll(async () => {
    issuer = new TestIssuer(inject('testIssuerBase'), `rotation-${crypto.randomUUID().slice(0, 8)}`);
    root = writeTree({ 'policies/deploy.yaml': policy(issuer.url) });
    broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log, now: () => clock });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('keeps tokens issued before a rotation verifying after it, publishes the next key first, and unpublishes the old one only after its tokens expired', async () => {
    const jwksResponse = await fetch(`${broker.url}/.well-known/jwks.json`);
    expect(jwksResponse.headers.get('cache-control')).toBe('public, max-age=300');
    const before = await exchange();
    const oldKid = kidOf(before);
    await broker.auditUpkeep(); // a checkpoint signed by the key about to be retired
    const [oldRsaKid] = await published('/.well-known/jwks.json', 'RS256');

    // On demand: the next key is published now but does not sign before the lead time.
    const started = await byRing(await broker.keyUpkeep({ rotate: true }));
    expect(started).toEqual([expect.objectContaining({ kind: 'publish', activatesAt: clock + cycle.leadMs })]);
    const nextKid = started[0]?.kid ?? '';
    expect(await published()).toEqual(expect.arrayContaining([oldKid, nextKid]));
    // The JWKS lists keys in no promised order: the RS256 ring's next key is the one that was not there before.
    const rsaKids = await published('/.well-known/jwks.json', 'RS256');
    expect(rsaKids).toHaveLength(2);
    expect(rsaKids).toContain(oldRsaKid);
    const nextRsaKid = rsaKids.find((kid) => kid !== oldRsaKid);
    expect(cycle.leadMs).toBeGreaterThanOrEqual((300 + 60) * 1000); // max-age + a refresh period
    clock += cycle.leadMs - MINUTE;
    await broker.keyUpkeep();
    expect(kidOf(await exchange())).toBe(oldKid);

    clock += MINUTE;
    expect(await byRing(await broker.keyUpkeep())).toEqual([
      { kind: 'retire', kid: oldKid },
      { kind: 'activate', kid: nextKid },
    ]);
    const after = await exchange();
    expect(kidOf(after)).toBe(nextKid);
    const retiredAt = clock;

    // A relying party fetching the broker's JWKS over HTTP accepts both.
    for (const token of [before, after]) {
      await expect(verifyAccessToken(token, { issuer: broker.config.issuer, audience: SERVICE, scopes: ['deploy:write'] })).resolves.toMatchObject({
        client_id: 'deploy',
      });
    }
    const app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.use('/deploy', keywayAuth({ issuer: broker.config.issuer, audience: SERVICE, scopes: ['deploy:write'] }));
    app.post('/deploy', (c) => c.json({ kid: kidOf(c.req.header('authorization')?.slice(7) ?? '') }));
    for (const token of [before, after])
      expect((await app.request('/deploy', { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

    // The retired key stays published as long as a token it signed (up to the max TTL) can live.
    clock = retiredAt + cycle.retainMs - MINUTE;
    expect(await broker.keyUpkeep()).toEqual([]);
    expect(await published()).toEqual(expect.arrayContaining([oldKid, nextKid]));
    clock = retiredAt + cycle.retainMs;
    expect(await byRing(await broker.keyUpkeep())).toEqual([{ kind: 'remove', kid: oldKid }]);
    expect(await published()).toEqual([nextKid]);
    expect(await published('/.well-known/jwks.json', 'RS256')).toEqual([nextRsaKid]);
    expect(await published('/v1/audit/keys', 'RS256')).toEqual(expect.arrayContaining([oldRsaKid, nextRsaKid]));
    // …but not from the audit keys: its checkpoint still verifies, locally and against /v1/audit/keys.
    expect(await published('/v1/audit/keys')).toEqual(expect.arrayContaining([oldKid, nextKid]));
    const verified = await cli(['audit', 'verify', '--json', '--data-dir', broker.config.dataDir]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, checkpoints: 1 });
    const checkpoint = (await (await fetch(`${broker.url}/v1/audit/checkpoints/latest`)).json()) as { jws: string };
    expect(kidOf(checkpoint.jws)).toBe(oldKid);
  });

  it('keeps private keys sealed in the database file and out of the logs', async () => {
    // A broker of its own, whatever the other tests did: its first key, and the next one a rotation publishes.
    const ownLog = recordingLogger();
    const own = await startNodeBroker(testConfig(writeTree({ 'policies/deploy.yaml': policy(issuer.url) })), { log: ownLog });
    try {
      const [published] = await own.keyUpkeep({ rotate: true });
      // The bytes as stored, read before the keys are opened (opening seals a plaintext key it finds).
      const disk = onDisk(own.config.dataDir);
      const logged = ownLog.text();
      const keys = await privateParts(own.config.dataDir);
      const secrets = keys.flatMap((key) => (key.alg === 'RS256' ? [key.privateJwk?.d, key.privateJwk?.p, key.privateJwk?.q] : [key.privateJwk?.d]));
      // The first and next key of each ring: ES256, and RS256 with its primes.
      expect(secrets).toHaveLength(8);
      for (const secret of secrets) expect(secret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      // What is looked through holds the keys' public parts and the rotation's log line.
      for (const key of keys) expect(disk).toContain(key.publicJwk.x ?? key.publicJwk.n);
      expect(logged).toContain(published?.kid);
      for (const secret of secrets) {
        expect(disk).not.toContain(secret);
        expect(logged).not.toContain(secret);
      }
      expect(statSync(join(own.config.dataDir, MASTER_KEY_FILE)).mode & 0o777).toBe(0o600);
    } finally {
      await own.close();
    }
  });

  it("leaves no trace of a removed key's sealed private part in the database file or its WAL", async () => {
    let ownClock = Date.now();
    const own = await startNodeBroker(testConfig(writeTree({ 'policies/deploy.yaml': policy(issuer.url) })), { log: recordingLogger(), now: () => ownClock });
    try {
      const retired = await retireFirstKeys(own, () => (ownClock += cycle.leadMs));
      const stretches = sealedStretches(own.config.dataDir, retired);
      expect(stretches.length).toBeGreaterThan(10);
      ownClock += cycle.retainMs;
      expect((await own.keyUpkeep()).filter((transition) => transition.kind === 'remove').map((transition) => transition.kid)).toEqual(retired);
      expect(sealedStretches(own.config.dataDir, retired)).toEqual([]);
      // Not one of them is left anywhere on disk, in a free part of a page or an older WAL frame.
      const disk = onDisk(own.config.dataDir);
      expect(stretches.filter((stretch) => disk.includes(stretch))).toEqual([]);
    } finally {
      await own.close();
    }
  });

  it('removes a key without waiting for a reader that holds the WAL, and says the older frames stay', async () => {
    let ownClock = Date.now();
    const ownLog = recordingLogger();
    const own = await startNodeBroker(testConfig(writeTree({ 'policies/deploy.yaml': policy(issuer.url) })), { log: ownLog, now: () => ownClock });
    // A reader in the middle of a read transaction (a backup, `keyway audit verify`): the WAL cannot be emptied under it.
    const reader = new Database(join(own.config.dataDir, DATABASE_FILE), { readonly: true });
    try {
      const retired = await retireFirstKeys(own, () => (ownClock += cycle.leadMs));
      reader.prepare('BEGIN').run();
      expect(reader.prepare('SELECT count(*) AS keys FROM signing_keys').get()).toMatchObject({ keys: 4 });
      ownClock += cycle.retainMs;
      const started = performance.now();
      expect((await own.keyUpkeep()).filter((transition) => transition.kind === 'remove').map((transition) => transition.kid)).toEqual(retired);
      // Not the 5 s busy timeout every other statement of the serving thread waits for a lock.
      expect(performance.now() - started).toBeLessThan(2500);
      expect(ownLog.text()).toContain("a removed signing key's sealed private part stays in older WAL frames");
      expect(sealedStretches(own.config.dataDir, retired)).toEqual([]);
    } finally {
      if (reader.inTransaction) reader.prepare('COMMIT').run();
      reader.close();
      await own.close();
    }
  });
});

describe('signing keys at rest across master keys and schema versions', () => {
  const master = (): MasterKeys => ({ current: parseMasterKey(generateMasterKey(), 'test'), previous: [] });

  async function run(dataDir: string, masterKeys: MasterKeys | undefined): Promise<string[]> {
    const root = dataDir.slice(0, -'/data'.length);
    const broker = await startNodeBroker(testConfig(root, { ...(masterKeys === undefined ? {} : { masterKeys }) }), { log: recordingLogger() });
    try {
      return ((await (await fetch(`${broker.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet).keys.map((key) => key.kid ?? '');
    } finally {
      await broker.close();
    }
  }

  it(
    'refuses to start while a signing key is stored in the clear; keyway keys seal seals it once, and it goes on verifying the tokens it signed',
    async () => {
      const issuer = new TestIssuer(inject('testIssuerBase'), `legacy-${crypto.randomUUID().slice(0, 8)}`);
      const root = writeTree({ 'policies/deploy.yaml': policy(issuer.url) });
      const config = testConfig(root);
      const exchange = async (broker: NodeBroker): Promise<string> => {
        const subject = await issuer.sign(ciClaims(issuer.url, broker.config.issuer));
        const response = await fetch(`${broker.url}/token`, {
          method: 'POST',
          body: exchangeForm(subject, { audience: SERVICE }),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        expect(response.status).toBe(200);
        return ((await response.json()) as { access_token: string }).access_token;
      };
      // The issuer is a name, not where the broker listens: keys come from the running broker's JWKS.
      const verified = (token: string, broker: NodeBroker) =>
        verifyAccessToken(token, {
          issuer: config.issuer,
          audience: SERVICE,
          scopes: ['deploy:write'],
          keys: createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`)),
        });

      let broker = await startNodeBroker(config, { log: recordingLogger() });
      const signed = await exchange(broker);
      await broker.close();
      // The key as a keyway from before sealing stored it: its private JWK in the clear. The ES256 key,
      // the one that signs keyway's tokens (the RS256 ring's key was created in the same millisecond).
      const legacy = (await privateParts(config.dataDir)).find((key) => key.alg === 'ES256');
      const db = openSqliteFile(join(config.dataDir, DATABASE_FILE));
      db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ?', [JSON.stringify(legacy?.privateJwk), legacy?.kid ?? '']);
      db.close();

      const refusal = startNodeBroker(config, { log: recordingLogger() });
      await expect(refusal).rejects.toBeInstanceOf(ConfigError);
      await expect(refusal).rejects.toThrow(`signing key ${legacy?.kid} is stored in the clear`);
      await expect(refusal).rejects.toThrow(`seal it once with \`keyway keys seal --data-dir ${config.dataDir}\``);

      const sealed = await cli(['keys', 'seal', '--data-dir', config.dataDir]);
      expect(sealed, sealed.stderr).toMatchObject({ code: 0, stdout: `sealed 1 signing key under the master key: ${legacy?.kid}\n` });
      expect(await cli(['keys', 'seal', '--data-dir', config.dataDir, '--json'])).toMatchObject({ code: 0, stdout: '{"sealed":[]}\n' });
      const stored = openSqliteFile(join(config.dataDir, DATABASE_FILE));
      const [row] = stored.all<{ private_jwk: string }>('SELECT private_jwk FROM signing_keys WHERE kid = ?', [legacy?.kid ?? '']);
      stored.close();
      expect(row?.private_jwk).toMatch(/^eyJ[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(onDisk(config.dataDir)).not.toContain(legacy?.privateJwk?.d);

      broker = await startNodeBroker(config, { log: recordingLogger() });
      try {
        await expect(verified(signed, broker)).resolves.toMatchObject({ client_id: 'deploy' });
        const after = await exchange(broker);
        expect(decodeProtectedHeader(after).kid).toBe(legacy?.kid);
        await expect(verified(after, broker)).resolves.toMatchObject({ client_id: 'deploy' });
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it('changes the master key: KEYWAY_MASTER_KEY_PREVIOUS opens the old seals, which are sealed again under the new key', async () => {
    const root = writeTree({});
    mkdirSync(join(root, 'policies'));
    const dataDir = join(root, 'data');
    const a = master();
    const b = master();
    const kids = await run(dataDir, a);
    expect(await run(dataDir, { current: b.current, previous: [a.current] })).toEqual(kids);
    // Re-sealed: the new key alone opens them now, the old one no longer does.
    expect(await run(dataDir, b)).toEqual(kids);
    await expect(privateParts(dataDir, a)).rejects.toBeInstanceOf(SecretBoxError);
    await expect(startNodeBroker(testConfig(root, { masterKeys: a }), { log: recordingLogger() })).rejects.toMatchObject({ code: 'unknown_key' });
  });
});

/**
 * Rotates a broker's first keys out: publishes the next ones, moves its clock on by the lead time (`advance`) and retires
 * them. Returns the retired kids, the ES256 ring's first key and the RS256 ring's.
 */
async function retireFirstKeys(broker: NodeBroker, advance: () => void): Promise<string[]> {
  const published = (await broker.keyUpkeep({ rotate: true })).map((transition) => transition.kid);
  advance();
  const retired = (await broker.keyUpkeep()).filter((transition) => transition.kind === 'retire').map((transition) => transition.kid);
  expect(retired).toHaveLength(2);
  for (const kid of published) expect(retired).not.toContain(kid);
  return retired;
}

/**
 * What is its own in the sealed private part of each of `kids` (a compact JWE: its header, the same for every key the master
 * key seals, then its own IV, ciphertext and tag): the IV, the tag and each 40-character stretch of the ciphertext, all on disk
 * (in the file or its WAL, as every committed row is). None for a key that has no private part.
 */
function sealedStretches(dataDir: string, kids: readonly string[]): string[] {
  const db = openSqliteFile(join(dataDir, DATABASE_FILE), { readonly: true });
  let sealed: string[];
  try {
    const rows = db.all<{ kid: string; private_jwk: string | null }>('SELECT kid, private_jwk FROM signing_keys');
    expect(rows.map((row) => row.kid)).toEqual(expect.arrayContaining([...kids]));
    sealed = rows.filter((row) => kids.includes(row.kid) && row.private_jwk !== null).map((row) => row.private_jwk ?? '');
  } finally {
    db.close();
  }
  const stretches = sealed.flatMap((text) => {
    const [, , iv = '', ciphertext = '', tag = ''] = text.split('.');
    return [iv, tag, ...Array.from({ length: Math.floor(ciphertext.length / 40) }, (_, index) => ciphertext.slice(index * 40, index * 40 + 40))];
  });
  for (const stretch of stretches) expect(stretch.length).toBeGreaterThanOrEqual(16);
  const disk = onDisk(dataDir);
  expect(stretches.filter((stretch) => !disk.includes(stretch))).toEqual([]);
  return stretches;
}

/** A data directory a broker started on once (with a round of audit upkeep if asked) and stopped, and the root it is under. */
async function dataDirOfStoppedBroker({ upkeep = false } = {}): Promise<{ root: string; dataDir: string }> {
  const root = writeTree({});
  mkdirSync(join(root, 'policies'));
  const broker = await startNodeBroker(testConfig(root), { log: recordingLogger() });
  if (upkeep) await broker.auditUpkeep();
  await broker.close();
  return { root, dataDir: broker.config.dataDir };
}

describe('keyway keys list / rotate (real processes on a real data dir)', () => {
  it(
    'lists the ring without the master key, rotates once when two processes ask at once, and refuses to rotate without the master key',
    async () => {
      const { root, dataDir } = await dataDirOfStoppedBroker();

      const rotations = await Promise.all([cli(['keys', 'rotate', '--data-dir', dataDir]), cli(['keys', 'rotate', '--data-dir', dataDir])]);
      for (const rotation of rotations) expect(rotation.code, rotation.stderr).toBe(0);
      expect(rotations.map((rotation) => rotation.stdout.startsWith('published next key')).filter(Boolean)).toHaveLength(1);
      expect(rotations.some((rotation) => rotation.stdout.startsWith('rotation already under way'))).toBe(true);

      renameSync(join(dataDir, MASTER_KEY_FILE), join(root, 'moved.key'));
      const listed = await cli(['keys', 'list', '--json', '--data-dir', dataDir]);
      expect(listed.code, listed.stderr).toBe(0);
      const { keys } = JSON.parse(listed.stdout) as { keys: { kid: string; alg: string; state: string; published_at: string; signs_from: string }[] };
      expect(keys.map((key) => `${key.alg} ${key.state}`).sort()).toEqual(['ES256 current', 'ES256 next', 'RS256 current', 'RS256 next']);
      const next = keys.find((key) => key.state === 'next' && key.alg === 'ES256');
      expect(Date.parse(next?.signs_from ?? '') - Date.parse(next?.published_at ?? '')).toBe(keyLifeCycle(readKeySettings({}), 3600).leadMs);
      const table = await cli(['keys', 'list', '--data-dir', dataDir]);
      expect(table.stdout).toMatch(/^kid\s+state\s+published/);
      expect(table.stdout).toContain(next?.kid);

      const refused = await cli(['keys', 'rotate', '--data-dir', dataDir]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('no master key');
      expect((await cli(['keys', 'rotate', '--data-dir', join(root, 'nowhere')])).stderr).toContain('no broker database');
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it.runIf(process.getuid?.() === 0)(
    'refuses to rotate in a data dir another user owns, as the broker refuses to start on it',
    async () => {
      const { root, dataDir } = await dataDirOfStoppedBroker();
      // Hers, as a member of a group that may write to its parent puts it in place of the broker's (her master key in it).
      for (const name of ['', DATABASE_FILE, MASTER_KEY_FILE]) chownSync(join(dataDir, name), 65534, 65534);
      await expect(startNodeBroker(testConfig(root), { log: recordingLogger() })).rejects.toThrow(`the data directory ${dataDir} belongs to uid 65534`);
      const rotated = await cli(['keys', 'rotate', '--data-dir', dataDir]);
      expect(rotated.code).toBe(1);
      expect(rotated.stderr).toContain('belongs to uid 65534');
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it.runIf(process.getuid?.() === 0)(
    'refuses to read the keys, verify the audit log or seal a secret in a data dir another user owns: its master key would attest its own keys',
    async () => {
      const { root, dataDir } = await dataDirOfStoppedBroker({ upkeep: true });
      // Hers, put in place of the broker's by a member of a group that may write to its parent.
      for (const name of ['', DATABASE_FILE, MASTER_KEY_FILE]) chownSync(join(dataDir, name), 65534, 65534);
      await expect(startNodeBroker(testConfig(root), { log: recordingLogger() })).rejects.toThrow('belongs to uid 65534');
      expect(await cli(['keys', 'list', '--data-dir', dataDir])).toMatchObject({ code: 1, stderr: expect.stringContaining('belongs to uid 65534') });
      expect(await cli(['audit', 'verify', '--data-dir', dataDir])).toMatchObject({ code: 1, stderr: expect.stringContaining('belongs to uid 65534') });
      // Nor seal an upstream's secret under the master key she put there.
      expect(await cli(['keys', 'secret', '--upstream', 'api', '--data-dir', dataDir])).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('belongs to uid 65534'),
      });
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});

describe('/v1/keys and keyway keys --url (a running broker, operator tokens)', () => {
  it(
    'lists with keys:read, rotates with keys:rotate, refuses other tokens, and logs who rotated',
    async () => {
      const { broker, log, tokenFor } = await operatedBroker({ olga: 'keys:read, keys:rotate' });
      try {
        const olga = await tokenFor('olga@acme.dev', 'keys:rotate');
        const rita = await tokenFor('rita@acme.dev', 'keys:read');
        const remote = ['--url', broker.url];

        const refused = await cli(['keys', 'rotate', ...remote], { KEYWAY_TOKEN: rita });
        expect(refused).toMatchObject({ code: 1, stderr: expect.stringContaining('403 insufficient_scope') });
        expect((await fetch(`${broker.url}/v1/keys/rotate`, { method: 'POST' })).status).toBe(401);
        expect((await cli(['keys', 'rotate', ...remote])).code).toBe(2);

        const rotated = await cli(['keys', 'rotate', ...remote, '--json'], { KEYWAY_TOKEN: olga });
        expect(rotated.code, rotated.stderr).toBe(0);
        const { transitions, next } = JSON.parse(rotated.stdout) as { transitions: { kind: string; kid: string }[]; next: { kid: string; state: string } };
        expect(transitions).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'publish', kid: next.kid })]));
        expect(transitions.map((transition) => transition.kind)).toEqual(['publish', 'publish']);
        expect(log.text()).toContain('signing key rotation requested');
        expect(log.text()).toContain('olga@acme.dev');

        const listed = await cli(['keys', 'list', ...remote, '--json'], { KEYWAY_TOKEN: rita });
        expect(listed.code, listed.stderr).toBe(0);
        const remoteKeys = (JSON.parse(listed.stdout) as { keys: { alg: string }[] }).keys;
        expect(remoteKeys.filter((key) => key.alg === 'ES256')).toEqual([
          expect.objectContaining({ state: 'current' }),
          expect.objectContaining({ kid: next.kid, state: 'next' }),
        ]);
        // The same answer as the data dir gives.
        expect(JSON.parse((await cli(['keys', 'list', '--json', '--data-dir', broker.config.dataDir])).stdout)).toEqual({ keys: remoteKeys });
      } finally {
        await broker.close();
      }
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});
