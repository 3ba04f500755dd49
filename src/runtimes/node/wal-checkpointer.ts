import { parentPort, workerData } from 'node:worker_threads';
import { errorText } from '../../core/log.ts';
import { openInDataDirSync, type DataDirPin } from '../../storage/private-data-dir.ts';
import { openSqliteFile, type SqliteFile } from '../../storage/sqlite-file.ts';
import { isStopRequest } from './thread-stop.ts';

/**
 * What the audit writer gives its checkpoint thread: the file, the data directory it must be in (as the writer's), and a
 * count of the batches it served (Int32, index 0).
 */
export interface WalCheckpointerData {
  readonly path: string;
  readonly dataDir: DataDirPin | undefined;
  readonly batches: SharedArrayBuffer;
}

/** What the checkpoint thread tells the writer: the first failure after a success (then nothing until one succeeds). */
export interface WalCheckpointFailure {
  readonly walCheckpointFailed: string;
}

/** How often the thread looks at the writer's count of batches: reading one shared integer, nothing else. */
const LOOK_EVERY_MS = 20;
/**
 * Batches after which the WAL is copied into the database file. One batch of one record writes
 * about 12.5 WAL frames (a page per B-tree its row touches), so 16 of those stay under the 1,000
 * frames at which SQLite's automatic checkpoint would run inside the writer's next commit; bigger
 * batches come under load, when the look every LOOK_EVERY_MS is what bounds the WAL. Fewer batches
 * wait in the WAL (durable) for the next ones, and for the last connection's close: no copy is
 * made for a lone commit, which would write the database file and fsync it for nothing the log needs.
 */
const AFTER_BATCHES = 16;
/** A failed checkpoint is tried again after this long. */
const RETRY_AFTER_MS = 1_000;

/**
 * The WAL's checkpoints, on a thread and a connection of their own beside the audit writer. A
 * PASSIVE checkpoint copies committed frames into the database file without taking the write
 * lock, so the writer goes on committing meanwhile. Left to SQLite's automatic checkpoint, that
 * copy runs inside one of the writer's commits every 1,000 frames, and the appends of that batch
 * wait for the copy and the database file's fsync. Any checkpoint that reaches the end of the WAL
 * lets the writer's next transaction start it over, so the WAL stays short; the writer's automatic
 * checkpoint stays on as the backstop. A failed checkpoint loses nothing (the frames stay in the
 * WAL, durable): the first of a failing spell is reported, it is retried after RETRY_AFTER_MS, and
 * meanwhile the writer's own checkpoints do the work. The connection never creates the file (where
 * it went missing, beside a live WAL, an empty one would make SQLite drop that WAL): this thread
 * then fails to start, which the writer reports.
 */
const { path, dataDir, batches: shared } = workerData as WalCheckpointerData;
const batches = new Int32Array(shared);
const db: SqliteFile = openInDataDirSync(
  dataDir,
  () => openSqliteFile(path, { existing: true }),
  (opened) => opened.close(),
);
// From the writer's first batch on: this thread starts after the writer, which may have served some meanwhile.
let copiedUpTo = 0;
let failedAt: number | undefined;

const looking = setInterval(() => {
  const served = Atomics.load(batches, 0);
  // `| 0`: the count wraps after 2^31 batches, and so does this difference, to the right value.
  if (((served - copiedUpTo) | 0) < AFTER_BATCHES) return;
  if (failedAt !== undefined && performance.now() - failedAt < RETRY_AFTER_MS) return;
  try {
    db.exec('PRAGMA wal_checkpoint(PASSIVE)');
    copiedUpTo = served;
    failedAt = undefined;
  } catch (error) {
    if (failedAt === undefined) parentPort?.postMessage({ walCheckpointFailed: errorText(error) } satisfies WalCheckpointFailure);
    failedAt = performance.now();
  }
}, LOOK_EVERY_MS);

// The writer's stop (stopThread): the thread ends once nothing is left to run.
parentPort?.on('message', (message: unknown) => {
  if (!isStopRequest(message)) return;
  clearInterval(looking);
  db.close();
  parentPort?.close();
});
