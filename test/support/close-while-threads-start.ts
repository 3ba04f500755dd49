// Opens a GroupCommitAuditStore and closes it again, ROUNDS times, each close timed to land while one of the store's
// threads loads SQLite's addon: the writer's WAL checkpoint thread (started once the writer has opened the file) or the
// chain check thread (started by the first chain check). A thread terminated in that load aborts the process (SIGABRT,
// "FATAL ERROR: Error::New napi_get_last_error_info"). Prints `closed ROUNDS times` if the process lives.
// Run as: node test/support/close-while-threads-start.ts [ROUNDS]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from './audit-event.ts';
import { connectionsTo } from './connections-to.ts';

const rounds = Number(process.argv[2] ?? '100');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// The store's threads are unref'd: without this, nothing would keep the process up while they start.
const keep = setInterval(() => {}, 1_000);

async function until(connections: number, path: string): Promise<void> {
  while (connectionsTo(path) < connections) await sleep(0);
}

/**
 * One round: closes the store `delayMs` after the thread `starting` is started (the checkpoint thread by the writer once
 * it has opened the file, the check thread by the first chain check) or, calibrating, once that thread has opened the
 * file too; returns how long after its start the close came.
 */
async function round(starting: 'checkpoint' | 'check', delayMs: number | 'until-open'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'keyway-close-'));
  const path = join(dir, DATABASE_FILE);
  const db = openSqliteFile(path);
  migrate(db);
  const store = new GroupCommitAuditStore(db, path);
  const appended = store.append(auditEvent());
  // This connection, then the writer's (which starts the checkpoint thread), then the checkpoint thread's, then the check thread's.
  await until(2, path);
  let opening = 3;
  let checked: Promise<unknown> = appended;
  if (starting === 'check') {
    await until(3, path);
    await appended;
    checked = store.pruneCandidate(Date.now(), 10).catch(() => undefined);
    opening = 4;
  }
  const started = performance.now();
  if (delayMs === 'until-open') await until(opening, path);
  else await sleep(delayMs);
  const openedAfter = performance.now() - started;
  await store.close();
  await checked;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return openedAfter;
}

for (const starting of ['checkpoint', 'check'] as const) {
  // How long the thread takes here to load the addon and open the file (the median of three), then closes around that.
  const opened = [await round(starting, 'until-open'), await round(starting, 'until-open'), await round(starting, 'until-open')];
  const moment = opened.sort((a, b) => a - b)[1] as number;
  for (let index = 0; index < rounds / 2; index += 1) await round(starting, Math.max(0, moment - 12 + Math.random() * 16));
}
clearInterval(keep);
console.log(`closed ${rounds} times`);
