import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { connectionsTo } from '../support/connections-to.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const PROBE = new URL('../support/audit-writer-probe.ts', import.meta.url).pathname;

function open() {
  const dir = mkdtempSync(join(tmpdir(), 'keyway-wal-checkpoint-'));
  const path = join(dir, DATABASE_FILE);
  const db = openSqliteFile(path);
  migrate(db);
  const failures: string[] = [];
  const store = new GroupCommitAuditStore(db, path, { onWalCheckpointFailure: (error) => failures.push(error) });
  return { dir, path, db, store, failures };
}

describe('the WAL checkpoint thread beside the Node audit writer', () => {
  it('copies committed records into the database file itself soon after, and closes its connection with the store', async () => {
    const { dir, path, db, store } = open();
    const events = Array.from({ length: 30 }, () => auditEvent());
    // One at a time: 30 batches, far fewer WAL frames than SQLite's own automatic checkpoint waits for
    // (1,000), so only the checkpoint thread puts them into the file, which a copy without its -wal shows.
    for (const event of events) await store.append(event);
    const copy = join(dir, 'copy.db');
    const inFileAlone = () => {
      rmSync(copy, { force: true });
      copyFileSync(path, copy);
      const file = openSqliteFile(copy, { readonly: true });
      try {
        return file.all<{ id: string }>('SELECT id FROM audit_events ORDER BY seq').map((row) => row.id);
      } catch (error) {
        if (/no such table/.test(String(error))) return []; // Not even the schema there yet.
        throw error;
      } finally {
        file.close();
      }
    };
    // The thread copies once 16 batches have come since its last copy, and then all that is committed: at least the first
    // 16 records, in order; the rest wait in the WAL (durable) for the next 16 batches, how many depending on how fast
    // the appends went.
    await expect.poll(() => inFileAlone().length, { timeout: 15_000, interval: 50 }).toBeGreaterThanOrEqual(16);
    const copied = inFileAlone();
    expect(copied).toEqual(events.slice(0, copied.length).map((event) => event.id));
    rmSync(copy);
    await store.close();
    db.close();
    // The last connection to close deletes the WAL: neither the writer's nor the checkpoint thread's outlived the store.
    await expect.poll(() => existsSync(`${path}-wal`), { timeout: 5_000 }).toBe(false);
    rmSync(dir, { recursive: true });
  });

  it('lets the writer start the WAL over, long before the automatic checkpoint would run', async () => {
    const { dir, path, db, store } = open();
    // WAL header bytes 12..15: the checkpoint sequence, which goes up each time a writer starts the WAL over.
    const restarts = () => readFileSync(`${path}-wal`).readUInt32BE(12);
    const frames = () => (readFileSync(`${path}-wal`).length - 32) / (4096 + 24);
    await Promise.all(Array.from({ length: 5 }, () => store.append(auditEvent())));
    const before = restarts();
    let restarted = false;
    for (let i = 0; i < 100 && !restarted; i += 1) {
      await sleep(40); // the checkpoint thread copies the commits so far ...
      await store.append(auditEvent()); // ... and the writer's next transaction starts the WAL over
      restarted = restarts() > before;
    }
    expect(restarted).toBe(true);
    expect(frames()).toBeLessThan(1000);
    await store.close();
    db.close();
    rmSync(dir, { recursive: true });
  });

  it('is best effort: when it cannot open the database, the writer goes on committing and the failure is reported once', async () => {
    const { dir, path, db, store, failures } = open();
    const first = store.append(auditEvent());
    // The writer has opened its connection (a -wal descriptor beside the serving thread's) and starts the
    // checkpoint thread next, which takes a worker's start-up to open its own. Meanwhile the data directory
    // is away for a moment (as any passing open failure would be: too many open files, say).
    while (connectionsTo(`${path}-wal`) < 2) await new Promise((resolve) => setImmediate(resolve));
    renameSync(dir, `${dir}-away`);
    setTimeout(() => renameSync(`${dir}-away`, dir), 1500);
    const outcomes: string[] = [];
    for (let i = 0; i < 100; i += 1) {
      outcomes.push(
        await store.append(auditEvent()).then(
          () => 'committed',
          (error: Error) => error.message,
        ),
      );
      await sleep(20);
    }
    expect(await first).toMatchObject({ seq: 1 });
    expect(outcomes.filter((outcome) => outcome !== 'committed')).toEqual([]);
    expect(store.writable()).toBe(true);
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')).toEqual([{ n: 101 }]);
    expect(failures).toEqual([expect.stringMatching(/^the WAL checkpoint thread stopped: .*open database/i)]);
    await store.close();
    db.close();
    rmSync(dir, { recursive: true });
  });

  // The test above takes the whole directory away, where no file can be created whatever the option.
  // Here only the database file is away, its -wal and -shm stay: an empty database made there would make
  // SQLite drop that WAL, and the writer's next appends would fail with "no such table".
  it('never creates the database file where only the file went missing, beside the live -wal and -shm', async () => {
    const { dir, path, db, store, failures } = open();
    const first = store.append(auditEvent());
    while (connectionsTo(`${path}-wal`) < 2) await new Promise((resolve) => setImmediate(resolve));
    renameSync(path, `${path}-away`);
    let createdMeanwhile = false;
    for (let i = 0; i < 50; i += 1) {
      await store.append(auditEvent());
      createdMeanwhile ||= existsSync(path);
      await sleep(20);
    }
    renameSync(`${path}-away`, path);
    await first;
    expect(createdMeanwhile).toBe(false);
    expect(failures).toEqual([expect.stringMatching(/unable to open database file/)]);
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')).toEqual([{ n: 51 }]);
    await store.close();
    db.close();
    rmSync(dir, { recursive: true });
  });

  // RLIMIT_NPROC counts one user's threads and root is exempt from it, so the probe runs as nobody, which
  // needs root to switch to and a checkout that nobody may read (not one in a 0700 temp directory, say).
  const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
  const canLimitThreads =
    process.getuid?.() === 0 &&
    existsSync('/usr/bin/setpriv') &&
    existsSync('/usr/bin/prlimit') &&
    spawnSync('/usr/bin/setpriv', [...asNobody, process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(PROBE)})`]).status === 0;
  it.skipIf(!canLimitThreads)(
    'a checkpoint thread the system cannot create (EAGAIN) does not stop the writer',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'keyway-wal-checkpoint-nproc-'));
      chmodSync(dir, 0o777);
      const results: { limit: number; outcomes: Record<string, number>; failures: string[] }[] = [];
      try {
        // From too few threads for the process itself (it crashes: no result) up to plenty.
        for (let limit = 5; limit <= 16; limit += 1) {
          const run = spawnSync('/usr/bin/setpriv', [...asNobody, '/usr/bin/prlimit', `--nproc=${limit}:${limit}`, process.execPath, PROBE, '3', '0'], {
            env: { ...process.env, PROBE_DIR: dir },
            encoding: 'utf8',
            timeout: 20_000,
          });
          const last = run.stdout.trim().split('\n').at(-1) ?? '';
          if (last.startsWith('{')) results.push({ limit, ...JSON.parse(last) });
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // Wherever the writer thread itself could start, every append commits; the checkpoint thread's absence is only reported.
      expect(results.length).toBeGreaterThan(0);
      for (const result of results) expect(result, `RLIMIT_NPROC ${result.limit}`).toMatchObject({ outcomes: { committed: 3 } });
      expect(results.some((result) => result.failures.some((failure) => /did not start/.test(failure)))).toBe(true);
    },
    120_000,
  );
});
