import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from '../suites/store-contract.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function open() {
  const dir = mkdtempSync(join(tmpdir(), 'keyway-wal-checkpoint-'));
  const path = join(dir, DATABASE_FILE);
  const db = openSqliteFile(path);
  migrate(db);
  const failures: string[] = [];
  const store = new GroupCommitAuditStore(db, path, { onWalCheckpointFailure: (error) => failures.push(error) });
  return { dir, path, db, store, failures };
}

/** How many descriptors this process holds on `file`: one per SQLite connection that opened it. */
const openedBy = (file: string) =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // A descriptor closed between listing and reading.
    }
  }).length;

describe('the WAL checkpoint thread beside the Node audit writer', () => {
  it('copies committed records into the database file itself soon after, and closes its connection with the store', async () => {
    const { dir, path, db, store } = open();
    const events = Array.from({ length: 30 }, () => auditEvent());
    await Promise.all(events.map((event) => store.append(event)));
    // 30 records are far fewer WAL frames than SQLite's own automatic checkpoint waits for (1,000):
    // only the checkpoint thread puts them into the file, which a copy without its -wal shows.
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
    await expect.poll(inFileAlone, { timeout: 15_000, interval: 50 }).toEqual(events.map((event) => event.id));
    rmSync(copy);
    await store.close();
    db.close();
    // The last connection to close deletes the WAL: neither the writer's nor the checkpoint thread's outlived the store.
    await expect.poll(() => existsSync(`${path}-wal`), { timeout: 5_000 }).toBe(false);
  });

  it('lets the writer start the WAL over, long before the automatic checkpoint would run', async () => {
    const { path, db, store } = open();
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
  });

  it('is best effort: when it cannot open the database, the writer goes on committing and the failure is reported', async () => {
    const { dir, path, db, store, failures } = open();
    const first = store.append(auditEvent());
    // The writer has opened its connection (a -wal descriptor beside the serving thread's) and starts the
    // checkpoint thread next, which takes a worker's start-up to open its own. Meanwhile the data directory
    // is away for a moment (as any passing open failure would be: too many open files, say).
    while (openedBy(`${path}-wal`) < 2) await new Promise((resolve) => setImmediate(resolve));
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
    // It never made an empty database where the file was missing: the directory came back with the log in it.
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')).toEqual([{ n: 101 }]);
    expect(failures).toEqual([expect.stringMatching(/^the WAL checkpoint thread stopped: .*open database/i)]);
    await store.close();
    db.close();
  });
});
