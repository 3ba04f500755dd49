import { parentPort, Worker, workerData } from 'node:worker_threads';
import { errorText } from '../../core/log.ts';
import type { AlertStore, ObserveOptions } from '../../features/alerts/alert-store.ts';
import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import type { CanonicalEvent } from '../../core/audit/chain-hash.ts';
import type { ReplayClaim, ReplayClaimResult } from '../../core/replay/replay-guard.ts';
import { RefusalCounts } from '../../features/alerts/refusal-counts.ts';
import { SqliteAlertStore } from '../../storage/sqlite-alert-store.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import { NODE_USAGE_TICK, READ_BACKLOG_MAX } from '../../storage/sqlite-audit-usage.ts';
import { SqliteReplayGuard } from '../../storage/sqlite-replay-guard.ts';
import { openInDataDirSync, type DataDirPin } from '../../storage/private-data-dir.ts';
import { openSqliteFile } from '../../storage/sqlite-file.ts';
import { isStopRequest, stopThread, type StopRequest } from './thread-stop.ts';
import type { WalCheckpointerData, WalCheckpointFailure } from './wal-checkpointer.ts';
import { NODE_HMAC_SHA256, NODE_JWT_CRYPTO } from './node-jwt-crypto.ts';
import { RecordMacs, type RecordMacKey } from '../../core/audit/record-mac.ts';

/**
 * The alert store's writes, and its reads that come with them (observe remembers what it saw).
 * `observe` names its event by the link this writer appended it at, instead of carrying it again.
 */
export type AlertCall =
  | { readonly method: 'observe'; readonly args: readonly [link: ChainLink, options: ObserveOptions] }
  | { [M in 'addAlerts' | 'setDelivery' | 'pruneAlerts']: { readonly method: M; readonly args: Parameters<AlertStore[M]> } }[
      | 'addAlerts'
      | 'setDelivery'
      | 'pruneAlerts'];

/** Per piece of work, its result or why it failed (the rest of its batch stands). */
export type Outcome<T> = { readonly result: T } | { readonly error: string };

/**
 * What the broker's main thread sends, all that waited while the writer was busy: audit events
 * (in their canonical form, encoded once on the main thread) to append in one transaction,
 * single-use claims to make in one transaction, and alert store calls, run in turn.
 */
export interface WriterRequest {
  readonly batch: number;
  readonly events: readonly CanonicalEvent[];
  readonly claims: readonly ReplayClaim[];
  readonly alerts: readonly AlertCall[];
}

/**
 * What the writer thread is started with: its database file, the data directory it must be in (when the broker checked
 * one), and the key it MACs each record with (derived from the master key, which it is never given; none: no MACs).
 */
export interface WriterData {
  readonly path: string;
  readonly dataDir: DataDirPin | undefined;
  readonly macKey: RecordMacKey | undefined;
}

/** Word from the writer thread that a batch of the usage roll-up failed (to log); it tries again later. */
export interface UsageRollUpFailure {
  readonly usageRollUpFailed: string;
  /** When it tries again. */
  readonly retryInMs: number;
}

/** What the writer thread sends the main thread: a reply to a request, or word that WAL checkpoints or the roll-up failed (to log). */
export type WriterMessage = WriterReply | WalCheckpointFailure | UsageRollUpFailure;

export interface WriterReply {
  readonly batch: number;
  /** The appends' links, or why their transaction failed. */
  readonly appended: Outcome<ChainLink[]>;
  /** Per claim: a failed transaction fails every claim in it, a failed claim only itself. */
  readonly claims: Outcome<ReplayClaimResult>[];
  readonly alerts: Outcome<unknown>[];
}

/**
 * The broker's single writer, on its own thread with its own connection: the audit log's appends
 * (hashing included), single-use claims and the alert store's writes, each batch committed with
 * its WAL fsync here, so the thread serving HTTP never waits on the disk.
 */
const { path, dataDir, macKey } = workerData as WriterData;
const db = openInDataDirSync(
  dataDir,
  () => openSqliteFile(path),
  (opened) => opened.close(),
);
// 16,000 KiB of page cache (better-sqlite3's default, set here so that another build cannot change it), not more. While
// the file is under 1 GiB, a commit in which SQLite reorders a split's new page numbers (through the page at 1 GiB) ends
// with a scan of every cached page: a 64 MiB cache cost about 100 µs more per record on a log of 300,000 records, and
// on a 2 GiB log the two sizes cost the same (docs/operations/capacity.md).
db.exec('PRAGMA cache_size = -16000');

// Copies the WAL into the database file off this thread, so commits do not wait for it; it is stopped before this thread ends.
// It is best effort: a failure, even to start, is reported to the main thread (to log) and never stops this writer,
// whose own automatic checkpoints then do the work. A thread that stopped is not started again until the writer is.
const batches = new SharedArrayBuffer(4);
const served = new Int32Array(batches);
const reportCheckpointFailure = (failure: WalCheckpointFailure): void => parentPort?.postMessage(failure satisfies WriterMessage);
let checkpointer: Worker | undefined;
try {
  checkpointer = new Worker(new URL('./wal-checkpointer.ts', import.meta.url), { workerData: { path, dataDir, batches } satisfies WalCheckpointerData })
    .on('message', reportCheckpointFailure)
    .on('error', (error) => reportCheckpointFailure({ walCheckpointFailed: `the WAL checkpoint thread stopped: ${errorText(error)}` }));
} catch (error) {
  // No thread to be had (EAGAIN near a process's thread limit): Node throws here, not through 'error'.
  reportCheckpointFailure({ walCheckpointFailed: `the WAL checkpoint thread did not start: ${errorText(error)}` });
}
const store = new SqliteAuditStore(db, {
  sha256: NODE_JWT_CRYPTO.sha256Hex,
  ...(macKey === undefined ? {} : { macs: new RecordMacs([macKey], { hmac: NODE_HMAC_SHA256 }) }),
  usage: { batch: NODE_USAGE_TICK.records, readBacklog: READ_BACKLOG_MAX },
});
const guard = new SqliteReplayGuard(db);
const alerts = new SqliteAlertStore(db, new RefusalCounts());

/** The text of the events appended lately, by seq, until their observe call comes (it follows the append's reply). */
const appended = new Map<number, string>();
const REMEMBERED = 4096;

function remember(events: readonly CanonicalEvent[], links: readonly ChainLink[]): void {
  for (const [index, link] of links.entries()) appended.set(link.seq, (events[index] as CanonicalEvent).text);
  for (const seq of appended.keys()) {
    if (appended.size <= REMEMBERED) break;
    appended.delete(seq);
  }
}

/** The event appended at `link`: remembered, or read back (and held to the link's hash). */
function appendedEvent(link: ChainLink): AuditEvent {
  let text = appended.get(link.seq);
  appended.delete(link.seq);
  if (text === undefined) {
    const [row] = db.all<{ event: string; hash: string | null }>('SELECT event, hash FROM audit_events WHERE seq = ?', [link.seq]);
    if (row === undefined || row.hash !== link.hash) throw new Error(`no audit record ${link.seq} with hash ${link.hash}`);
    text = row.event;
  }
  return JSON.parse(text) as AuditEvent;
}

/** Runs `work` now (a store call runs its transaction synchronously) and settles what it returns or throws. */
function settle<T>(work: () => T | Promise<T>): Promise<Outcome<T>> {
  let returned: T | Promise<T>;
  try {
    returned = work();
  } catch (error) {
    return Promise.resolve({ error: errorText(error) });
  }
  return Promise.resolve(returned).then(
    (result): Outcome<T> => ({ result }),
    (error: unknown): Outcome<T> => ({ error: errorText(error) }),
  );
}

async function serve(request: WriterRequest): Promise<WriterReply> {
  const claims =
    request.claims.length === 0
      ? []
      : await settle(() =>
          // One transaction, one fsync for the claims; each in a savepoint of its own, so one that fails fails alone.
          db.transaction(() => request.claims.map((claim) => settle(() => guard.claim(claim)))),
        ).then((batch) => ('result' in batch ? Promise.all(batch.result) : request.claims.map(() => batch)));
  const appendedNow = request.events.length === 0 ? { result: [] } : await settle(() => store.appendCanonical(request.events));
  if ('result' in appendedNow) remember(request.events, appendedNow.result);
  const results: Outcome<unknown>[] = [];
  for (const call of request.alerts) {
    results.push(
      await settle<unknown>(() =>
        call.method === 'observe'
          ? alerts.observe(appendedEvent(call.args[0]), ...call.args)
          : call.method === 'addAlerts'
            ? alerts.addAlerts(...call.args)
            : call.method === 'setDelivery'
              ? alerts.setDelivery(...call.args)
              : alerts.pruneAlerts(...call.args),
      ),
    );
  }
  // One more batch served (its claims, its appends and the alert store's writes, each their own commits) for the checkpoint thread.
  Atomics.add(served, 0, 1);
  return { batch: request.batch, appended: appendedNow, claims, alerts: results };
}

/**
 * The usage roll-up (sqlite-audit-usage.ts) is kept here, between batches, one small batch at a time (NODE_USAGE_TICK):
 * on this thread it waits for no lock and holds no other connection's commit back (run from the main thread's connection,
 * each batch held the write lock, and this thread's commits slept in SQLite's busy handler). Its commits do not wait for
 * the disk (synchronous=NORMAL: the roll-up is derived from the records, and its watermark commits with it, so a commit lost
 * to a power cut is rolled up again); the next record's commit, FULL, makes them durable. The quick pace is for a backlog
 * of a batch or more: under load the records of two seconds are a few batches, not one every 20 ms.
 */
let usageTick: NodeJS.Timeout | undefined;
/** Failed roll-up batches in a row: each waits twice as long as the last, up to a minute, so a lasting fault logs a line a minute, not every two seconds. */
let usageFailures = 0;
const USAGE_RETRY_MAX_MS = 60_000;
function keepUsage(): void {
  let wait: number = NODE_USAGE_TICK.idleMs;
  try {
    db.exec('PRAGMA synchronous = NORMAL');
    if (store.rollUpUsage(0).behind >= NODE_USAGE_TICK.records) wait = NODE_USAGE_TICK.pauseMs;
    usageFailures = 0;
  } catch (error) {
    usageFailures += 1;
    wait = Math.min(NODE_USAGE_TICK.idleMs * 2 ** (usageFailures - 1), USAGE_RETRY_MAX_MS);
    parentPort?.postMessage({ usageRollUpFailed: errorText(error), retryInMs: wait } satisfies WriterMessage);
  } finally {
    db.exec('PRAGMA synchronous = FULL');
  }
  usageTick = setTimeout(keepUsage, wait);
}
keepUsage();

/** How long the checkpoint thread has to stop when this one does (it may be in a checkpoint) before it is terminated. */
const CHECKPOINTER_STOPS_WITHIN_MS = 2_000;

parentPort?.on('message', async (request: WriterRequest | StopRequest) => {
  if (!isStopRequest(request)) return parentPort?.postMessage(await serve(request));
  // The store's close (stopThread), sent once every batch is answered: the checkpoint thread first, which may still be starting.
  clearTimeout(usageTick);
  if (checkpointer !== undefined) await stopThread(checkpointer, CHECKPOINTER_STOPS_WITHIN_MS);
  db.close();
  parentPort?.close();
});
