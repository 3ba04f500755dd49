import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteFile, type SqliteFile } from '../../storage/sqlite-file.ts';

/** What the audit writer gives its checkpoint thread: the file, and a count of the commits it made (Int32, index 0). */
export interface WalCheckpointerData {
  readonly path: string;
  readonly commits: SharedArrayBuffer;
}

/** What the checkpoint thread tells the writer: the first failure after a success (then nothing until one succeeds). */
export interface WalCheckpointFailure {
  readonly walCheckpointFailed: string;
}

/** How often the thread looks at the writer's commit count: reading one shared integer, nothing else. */
const LOOK_EVERY_MS = 20;
/**
 * Commits after which the WAL is copied into the database file. One commit writes 12 to 45 WAL
 * frames (a page per B-tree it touches, more for bigger batches), so 16 commits stay under the
 * 1,000 frames at which SQLite's automatic checkpoint would run inside the writer's next commit.
 */
const AFTER_COMMITS = 16;
/** Fewer commits than that wait at most this long after the last checkpoint; a failed checkpoint is retried after it too. */
const OTHERWISE_AFTER_MS = 250;

/**
 * The WAL's checkpoints, on a thread and a connection of their own beside the audit writer. A
 * PASSIVE checkpoint copies committed frames into the database file without taking the write
 * lock, so the writer goes on committing meanwhile. Left to SQLite's automatic checkpoint, that
 * copy runs inside one of the writer's commits every 1,000 frames, and the appends of that batch
 * wait for the copy and the database file's fsync (measured at 1,000 exchanges/s on one core: a
 * batch's p99 6–8 ms without this thread, 2.5–4.3 ms with it). Any checkpoint that reaches the end
 * of the WAL lets the writer's next transaction start it over, so the WAL stays short; the writer's
 * automatic checkpoint stays on as the backstop. A failure loses nothing (the frames stay in the
 * WAL, durable): it is reported, retried after OTHERWISE_AFTER_MS, and meanwhile the writer's own
 * checkpoints do the work. The connection never creates the file: where it went missing, this
 * thread reports that and ends.
 */
const { path, commits } = workerData as WalCheckpointerData;
const committed = new Int32Array(commits);
const db: SqliteFile = openSqliteFile(path, { existing: true });
// From the writer's first commit on: this thread starts after the writer, which may have committed meanwhile.
let copiedUpTo = 0;
let lastAt = performance.now();
let failing = false;

setInterval(() => {
  const now = performance.now();
  const made = Atomics.load(committed, 0);
  // `| 0`: the count wraps after 2^31 commits, and so does this difference, to the right value.
  const pending = (made - copiedUpTo) | 0;
  if (pending === 0 || (pending < AFTER_COMMITS && now - lastAt < OTHERWISE_AFTER_MS)) return;
  if (failing && now - lastAt < OTHERWISE_AFTER_MS) return;
  lastAt = now;
  try {
    db.exec('PRAGMA wal_checkpoint(PASSIVE)');
    copiedUpTo = made;
    failing = false;
  } catch (error) {
    if (!failing)
      parentPort?.postMessage({
        walCheckpointFailed: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      } satisfies WalCheckpointFailure);
    failing = true;
  }
}, LOOK_EVERY_MS);
