import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { WriterData } from '../../src/runtimes/node/audit-writer.ts';
import type { ChainCheckerData } from '../../src/runtimes/node/chain-check-thread.ts';
import { stopThread } from '../../src/runtimes/node/thread-stop.ts';
import type { WalCheckpointerData } from '../../src/runtimes/node/wal-checkpointer.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';

const CLOSE_WHILE_STARTING = new URL('../support/close-while-threads-start.ts', import.meta.url).pathname;

function databaseFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'keyway-thread-stop-')), DATABASE_FILE);
  const db = openSqliteFile(path);
  migrate(db);
  db.close();
  return path;
}

/** Starts `module` (a thread of src/runtimes/node) and asks it to stop at once: its exit code (0 when it ended itself, 1 when terminated). */
async function stoppedAtOnce(module: string, workerData: WriterData | WalCheckpointerData | ChainCheckerData): Promise<number> {
  const thread = new Worker(new URL(`../../src/runtimes/node/${module}`, import.meta.url), { workerData });
  const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
  await stopThread(thread, 10_000);
  return exited;
}

describe('stopping the Node broker SQLite threads', () => {
  // A thread terminated while it loads better-sqlite3's addon aborts the process: each must be asked, and end itself.
  it.each([
    [
      'audit-writer.ts (and its checkpoint thread)',
      'audit-writer.ts',
      (path: string) => ({ path, dataDir: undefined, macKey: undefined }) satisfies WriterData,
    ],
    [
      'wal-checkpointer.ts',
      'wal-checkpointer.ts',
      (path: string) => ({ path, dataDir: undefined, batches: new SharedArrayBuffer(4) }) satisfies WalCheckpointerData,
    ],
    ['chain-checker.ts', 'chain-checker.ts', (path: string) => ({ path, dataDir: undefined, macKeys: [] }) satisfies ChainCheckerData],
  ])('%s, asked to stop as it starts, stops after its start-up by itself, not terminated', async (_name, module, data) => {
    expect(await stoppedAtOnce(module, data(databaseFile()))).toBe(0);
  });

  it('terminates a thread that does not stop when asked, once its time is up', async () => {
    const thread = new Worker('setInterval(() => {}, 1000);', { eval: true });
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    const started = performance.now();
    await stopThread(thread, 200);
    expect(await exited).toBe(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('returns at once for a thread that has already ended', async () => {
    const thread = new Worker('', { eval: true });
    await new Promise((resolve) => thread.once('exit', resolve));
    const started = performance.now();
    await stopThread(thread, 10_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('a process survives closing an audit store while its threads load SQLite, round after round', { timeout: 120_000 }, () => {
    // Each close lands within milliseconds of a thread's load; terminate() there aborted the process (SIGABRT) about
    // once in forty rounds on a 2-core machine, so this run fails on that code about half the time, and never on this.
    const run = spawnSync(process.execPath, [CLOSE_WHILE_STARTING, '40'], { encoding: 'utf8', timeout: 110_000 });
    expect(run.stderr).not.toMatch(/FATAL ERROR/);
    expect({ status: run.status, signal: run.signal, stdout: run.stdout.trim() }).toEqual({ status: 0, signal: null, stdout: 'closed 40 times' });
  });
});
