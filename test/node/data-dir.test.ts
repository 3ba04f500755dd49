import { chmodSync, existsSync, lchownSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Logger } from '../../src/core/log.ts';
import { MASTER_KEY_FILE } from '../../src/storage/master-key-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import type { BrokerCluster } from '../../src/runtimes/node/broker-processes.ts';
import { sharedWriterPath } from '../../src/runtimes/node/shared-audit-writer.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DataDirMovedError, openInExistingDataDir } from '../../src/storage/private-data-dir.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { exchangeForm, freshIssuer, postToken, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { runProcess, testConfig, writeTree } from './node-harness.ts';

const mode = (path: string): number => statSync(path).mode & 0o777;

/** Every file in the data dir with its mode, e.g. { 'keyway.db': 0o600, … }. */
const modes = (dataDir: string): Record<string, number> => Object.fromEntries(readdirSync(dataDir).map((name) => [name, mode(join(dataDir, name))]));

function warnings(): Logger & { lines: { message: string; fields?: object }[] } {
  const lines: { message: string; fields?: object }[] = [];
  const ignore = () => {};
  return { info: ignore, error: ignore, warn: (message, fields) => void lines.push({ message, ...(fields === undefined ? {} : { fields }) }), lines };
}

describe('the data directory at rest (real files)', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  async function start(root: string, log: Logger = warnings()): Promise<NodeBroker> {
    const broker = await startNodeBroker(testConfig(root), { log });
    running.push(broker);
    return broker;
  }

  it('creates the data dir 0700, and the database, its WAL and shared memory and the master key 0600, even under a umask of 000', async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const previous = process.umask(0o000);
    try {
      const broker = await start(root);
      await broker.auditUpkeep();
      const dataDir = broker.config.dataDir;
      expect(mode(dataDir)).toBe(0o700);
      expect(modes(dataDir)).toEqual({ [DATABASE_FILE]: 0o600, [`${DATABASE_FILE}-wal`]: 0o600, [`${DATABASE_FILE}-shm`]: 0o600, [MASTER_KEY_FILE]: 0o600 });
    } finally {
      process.umask(previous);
    }
  });

  it('sets to 0600 a database, WAL and master key an earlier keyway left 0644 in its owner-only data dir, and says so', async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const first = await start(root);
    const dataDir = first.config.dataDir;
    await running.splice(0)[0]?.close();
    // An empty WAL, as a process that stopped before its first write leaves one.
    writeFileSync(join(dataDir, `${DATABASE_FILE}-wal`), '');
    for (const name of readdirSync(dataDir)) chmodSync(join(dataDir, name), 0o644);
    const loose = readdirSync(dataDir).sort();
    expect(loose).toEqual([DATABASE_FILE, `${DATABASE_FILE}-wal`, MASTER_KEY_FILE].sort());

    const log = warnings();
    await start(root, log);
    expect(Object.values(modes(dataDir)).every((value) => value === 0o600)).toBe(true);
    expect(mode(dataDir)).toBe(0o700);
    const tightened = log.lines.filter((line) => line.message === 'data file was readable beyond its owner: now 0600');
    expect(tightened.map((line) => (line.fields as { path: string }).path).sort()).toEqual(loose.map((name) => join(dataDir, name)));
  });

  it('refuses a data dir an operator made open to group or others, creates nothing in it, and says what to run', async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const dataDir = join(root, 'data');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o755);

    const refusal = startNodeBroker(testConfig(root), { log: warnings() });
    await expect(refusal).rejects.toBeInstanceOf(ConfigError);
    await expect(refusal).rejects.toThrow(`the data directory ${dataDir} is open to its group or others (mode 0755)`);
    await expect(refusal).rejects.toThrow(`run \`chmod 700 ${dataDir}\``);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(mode(dataDir)).toBe(0o755);

    // As `npm start` says it.
    const started = await runProcess(process.execPath, ['src/runtimes/node/main.ts'], {
      env: { ...process.env, PORT: '0', KEYWAY_DATA_DIR: dataDir, KEYWAY_POLICIES: join(root, 'policies') },
    });
    expect(started.code).toBe(1);
    expect(started.stderr).toMatch(/keyway: the data directory .* is open to its group or others \(mode 0755\).*chmod 700/);
    expect(existsSync(join(dataDir, DATABASE_FILE))).toBe(false);

    // Closed by the operator, it is used.
    chmodSync(dataDir, 0o700);
    await start(root);
    expect(modes(dataDir)[DATABASE_FILE]).toBe(0o600);
  });

  it('opens every file under the real path it checked: a link on KEYWAY_DATA_DIR pointed elsewhere after start changes nothing', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'data-dir-link');
    const root = writeTree({ 'policies/deploy.yaml': suitePolicies(issuer, issuer)['deploy/production.yaml'] as string });
    const [checked, elsewhere, link] = [join(root, 'checked'), join(root, 'elsewhere'), join(root, 'data')];
    mkdirSync(checked, { mode: 0o700 });
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(checked, link);
    const broker = await startNodeBroker(testConfig(root, { dataDir: link }), { log: warnings() });
    running.push(broker);
    // The link now names another directory, before the audit writer's thread first opens the database.
    renameSync(link, join(root, 'old-link'));
    symlinkSync(elsewhere, link);
    const client = { issuer: broker.config.issuer, request: (path: string, init?: RequestInit) => fetch(`${broker.url}${path}`, init) };
    for (let index = 0; index < 2; index += 1) {
      const granted = await postToken(client, exchangeForm(await issuer.sign(ciClaims(issuer.url, broker.config.issuer))));
      expect(granted.status).toBe(200);
    }
    expect(readdirSync(elsewhere)).toEqual([]);
    const db = openSqliteFile(join(checked, DATABASE_FILE), { readonly: true });
    expect(db.all("SELECT count(*) AS n FROM audit_events WHERE decision = 'granted'")).toEqual([{ n: 2 }]);
    db.close();
  });

  it('refuses a data dir under a directory others may change (writable by them, not sticky), not one its group may', async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const open = join(root, 'shared');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const refusal = startNodeBroker(testConfig(root, { dataDir: join(open, 'data') }), { log: warnings() });
    await expect(refusal).rejects.toBeInstanceOf(ConfigError);
    await expect(refusal).rejects.toThrow(`is reached through a directory others could change: ${open} can be changed by others (mode 777)`);
    // A project under umask 002 (the user's private group), a volume with an fsGroup: the group writing is allowed.
    const project = join(root, 'project');
    mkdirSync(project);
    chmodSync(project, 0o2775);
    const broker = await startNodeBroker(testConfig(root, { dataDir: join(project, '.keyway') }), { log: warnings() });
    running.push(broker);
    expect(mode(join(project, '.keyway'))).toBe(0o700);
  });

  it('refuses a data dir under a directory others may change before it creates anything: neither it nor a missing parent is left there', async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const open = join(root, 'shared');
    mkdirSync(open);
    chmodSync(open, 0o777);
    for (const dataDir of [join(open, 'data'), join(open, 'deploy', 'data')]) {
      await expect(startNodeBroker(testConfig(root, { dataDir }), { log: warnings() })).rejects.toThrow(
        `is reached through a directory others could change: ${open} can be changed by others (mode 777)`,
      );
    }
    expect(readdirSync(open)).toEqual([]);
  });

  /**
   * A data dir under a parent its group may write to (allowed), started on; then a member of that group renames it away
   * and puts a directory of her own in its place, holding a database she made.
   */
  async function swappedAfterStart(cluster?: BrokerCluster) {
    const issuer = freshIssuer(inject('testIssuerBase'), 'data-dir-swapped');
    const root = writeTree({ 'policies/deploy.yaml': suitePolicies(issuer, issuer)['deploy/production.yaml'] as string });
    const project = join(root, 'project');
    mkdirSync(project);
    chmodSync(project, 0o2775);
    const dataDir = join(project, '.keyway');
    const broker = await startNodeBroker(testConfig(root, { dataDir }), { log: warnings(), ...(cluster === undefined ? {} : { cluster }) });
    running.push(broker);
    const exchange = async (to: NodeBroker = broker) =>
      postToken(
        { issuer: to.config.issuer, request: (path: string, init?: RequestInit) => fetch(`${to.url}${path}`, init) },
        exchangeForm(await issuer.sign(ciClaims(issuer.url, to.config.issuer))),
      );
    const swap = () => {
      renameSync(dataDir, join(project, 'moved'));
      mkdirSync(dataDir, { mode: 0o700 });
      const planted = openSqliteFile(join(dataDir, DATABASE_FILE));
      migrate(planted);
      planted.close();
    };
    const plantedRecords = () => {
      const db = openSqliteFile(join(dataDir, DATABASE_FILE), { readonly: true });
      try {
        return db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n;
      } finally {
        db.close();
      }
    };
    return { root, dataDir, project, broker, exchange, swap, plantedRecords };
  }

  it('a data dir renamed away after start-up and replaced (its parent group-writable): the audit writer refuses the other one, and no token is issued', async () => {
    const { dataDir, exchange, swap, plantedRecords } = await swappedAfterStart();
    // Before the audit writer's thread first opens the database.
    swap();
    const refused = await exchange();
    expect(refused.status).toBe(503);
    expect(refused.body['access_token']).toBeUndefined();
    expect(readdirSync(dataDir)).toEqual([DATABASE_FILE]);
    expect(plantedRecords()).toBe(0);
  });

  it("another broker process refuses a data dir that is not the one its leader opened, and creates nothing in a missing one's place", async () => {
    const { root, dataDir, project, broker, swap } = await swappedAfterStart({
      leader: true,
      announce: () => undefined,
      leaderStatus: () => ({ serving: true }),
    });
    const follower = (identity: string) =>
      startNodeBroker(testConfig(root, { dataDir }), {
        log: warnings(),
        cluster: { leader: false, dataDir: identity, announce: () => undefined, leaderStatus: () => ({ serving: true }) },
      });
    // Renamed away, nothing in its place: a follower started again would otherwise make a new, empty data dir there.
    renameSync(dataDir, join(project, 'away'));
    await expect(follower(broker.dataDirIdentity)).rejects.toBeInstanceOf(DataDirMovedError);
    expect(existsSync(dataDir)).toBe(false);
    renameSync(join(project, 'away'), dataDir);
    swap();
    await expect(follower(broker.dataDirIdentity)).rejects.toThrow(`${dataDir} no longer names the data directory keyway checked at start-up`);
    expect(readdirSync(dataDir)).toEqual([DATABASE_FILE]);
  });

  it('a follower whose data dir was renamed away and replaced sends nothing to an audit writer listening in the other one, and issues no token', async () => {
    // Announcements are delivered by hand below.
    const part = (leader: boolean): BrokerCluster => ({ leader, announce: () => undefined, leaderStatus: () => ({ serving: true }) });
    const { root, dataDir, broker: leader, exchange, swap } = await swappedAfterStart(part(true));
    const follower = await startNodeBroker(testConfig(root, { dataDir }), { log: warnings(), cluster: { ...part(false), dataDir: leader.dataDirIdentity } });
    running.push(follower);
    expect((await exchange(follower)).status).toBe(200);
    await running.splice(0, 1)[0]?.close();
    swap();
    // Hers, listening where the leader's socket was: what reaches it (audit records, single-use claims) is hers to read.
    const heard: string[] = [];
    const impostor = createServer((socket) => {
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => void heard.push(chunk));
    });
    impostor.listen(sharedWriterPath(dataDir) as string);
    await once(impostor, 'listening');
    try {
      follower.heard('audit-writer-listening');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await exchange(follower)).status).toBe(503);
      expect(heard).toEqual([]);
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  it.runIf(process.getuid?.() === 0)("refuses a data dir reached through another user's symbolic link in a sticky directory like /tmp", async () => {
    const root = writeTree({ 'policies/.keep': '' });
    const [own, sticky] = [join(root, 'own'), join(root, 'tmp')];
    mkdirSync(own, { mode: 0o700 });
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const planted = join(sticky, 'keyway');
    symlinkSync(own, planted);
    lchownSync(planted, 65534, 65534);
    const refusal = startNodeBroker(testConfig(root, { dataDir: planted }), { log: warnings() });
    await expect(refusal).rejects.toThrow(`the data directory ${planted} is reached through ${planted}, a symbolic link of uid 65534`);
    expect(readdirSync(own)).toEqual([]);
  });
});

describe('a data directory a command only reads (audit, backup, the key list)', () => {
  it('is read at the mode mkdir gives it (0755), and refused when its group or others may write in it: they could have put their own database and master key there', async () => {
    const root = writeTree({});
    const dir = join(root, 'copy');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, DATABASE_FILE), '');
    const read = (mode: number) => {
      chmodSync(dir, mode);
      return openInExistingDataDir(dir, (checked) => readdirSync(checked), { reading: true });
    };
    await expect(read(0o755)).resolves.toEqual([DATABASE_FILE]);
    for (const mode of [0o775, 0o757, 0o777]) await expect(read(mode)).rejects.toThrow(/may be written by its group or others/);
  });
});

describe('a data directory another process works in meanwhile', () => {
  it('is opened by a command while SQLite creates and deletes its -wal and -shm files, as the last connection of another process closes', async () => {
    const root = writeTree({});
    const dir = join(root, 'data');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, DATABASE_FILE), '', { mode: 0o600 });
    // Another process's connections, opened and closed as fast as it can: each leaves a -shm SQLite made with the
    // database's mode, and deletes it as it closes. Between listing the directory and tightening a file, it may be gone.
    const churn = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs'); const file = ${JSON.stringify(join(dir, `${DATABASE_FILE}-shm`))}; const end = Date.now() + 20000;
         while (Date.now() < end) { try { fs.writeFileSync(file, '', { mode: 0o644 }); fs.chmodSync(file, 0o644); fs.unlinkSync(file); } catch {} }`,
      ],
      { stdio: 'ignore' },
    );
    try {
      await sleep(200);
      const failures: string[] = [];
      for (let n = 0; n < 3000 && failures.length === 0; n++) {
        await openInExistingDataDir(dir, () => undefined).catch((error: unknown) => failures.push(String(error)));
      }
      expect(failures).toEqual([]);
    } finally {
      churn.kill();
    }
  });
});
