import { Worker } from 'node:worker_threads';
import type { AlertStore } from '../../features/alerts/alert-store.ts';
import type { AuditEvent, ChainLink, PruneCandidate } from '../../core/audit/audit-event.ts';
import type { ChainHead } from '../../core/audit/checkpoint.ts';
import { canonicalEvent, checkedCanonicalEvent, type CanonicalEvent } from '../../core/audit/chain-hash.ts';
import type { ReplayClaim, ReplayClaimResult } from '../../core/replay/replay-guard.ts';
import { errorText } from '../../core/log.ts';
import type { DataDirPin } from '../../storage/private-data-dir.ts';
import type { SqliteFile } from '../../storage/sqlite-file.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import type { UsageRollUpLimits } from '../../storage/sqlite-audit-usage.ts';
import type { AlertCall, Outcome, WriterData, WriterMessage, WriterReply, WriterRequest, UsageRollUpFailure } from './audit-writer.ts';
import type { SharedWriterConnection, SharedWriterReply } from './shared-audit-writer.ts';
import { ChainCheckThread } from './chain-check-thread.ts';
import { stopThread } from './thread-stop.ts';
import { NODE_HMAC_SHA256 } from './node-jwt-crypto.ts';
import { RecordMacs, type RecordMacKey } from '../../core/audit/record-mac.ts';

/** Whether `outcomes` (from a reply off a socket) are `count` outcomes, each an object. */
function answers(outcomes: unknown, count: number): boolean {
  return Array.isArray(outcomes) && outcomes.length === count && outcomes.every((outcome) => typeof outcome === 'object' && outcome !== null);
}

/** Settles one piece of work with its outcome from a writer's reply; one the reply says nothing of fails. */
function settleWith<T>(work: { resolve(value: T): void; reject(error: unknown): void }, outcome: Outcome<T> | undefined): void {
  if (outcome !== undefined && 'result' in outcome) work.resolve(outcome.result);
  else work.reject(new Error(outcome?.error ?? 'the writer gave no answer'));
}

/** What waits for the writer thread, by kind, and since when (performance.now(): a clock set back or forward ages nothing). */
type Work = { readonly since: number } & (
  | { readonly kind: 'append'; readonly event: CanonicalEvent; readonly resolve: (link: ChainLink) => void; readonly reject: (error: unknown) => void }
  | { readonly kind: 'claim'; readonly claim: ReplayClaim; readonly resolve: (result: ReplayClaimResult) => void; readonly reject: (error: unknown) => void }
  | { readonly kind: 'alerts'; readonly call: AlertCall; readonly resolve: (result: unknown) => void; readonly reject: (error: unknown) => void }
);
type Kind = Work['kind'];
type Of<K extends Kind> = Extract<Work, { kind: K }>;
/** Work as it is handed in, before it waits. */
type NewWork = { [K in Kind]: Omit<Of<K>, 'since'> }[Kind];

const MAX_BATCH = 512;
/** How long the writer thread has to stop on close (its checkpoint thread first, see audit-writer.ts) before it is terminated. */
const WRITER_STOPS_WITHIN_MS = 5_000;
const KINDS: readonly Kind[] = ['append', 'claim', 'alerts'];

/** One message to the writer (this process's thread, or the leader's over a shared writer connection): what it carries of each kind. */
interface InFlight {
  readonly append: Of<'append'>[];
  readonly claim: Of<'claim'>[];
  readonly alerts: Of<'alerts'>[];
  /** Sent to the leader's writer rather than this process's. */
  readonly shared: boolean;
}

/**
 * How long after a failed commit the store reports itself unwritable (readiness 503). Readiness
 * never writes; after this the next append is the test, so a store that was fixed comes back.
 */
export const UNWRITABLE_AFTER_FAILURE_MS = 10_000;

/**
 * How long the writer may leave a write unanswered before the broker reports it stalled (`/healthz` degraded): twice
 * SQLite's busy timeout (sqlite-file.ts), the longest a commit waits for another connection's lock before it fails and
 * is answered, and the time a follower's batch waits for the leader's writer (SHARED_REPLY_TIMEOUT_MS).
 */
export const STALLED_AFTER_SECONDS = 10;

/**
 * The Node audit log, and the one writer of the broker's SQLite file. Reads run on the caller's
 * connection; appends go to a single writer thread with group commit: the appends that arrive
 * while it commits one batch become the next batch, one transaction and one WAL fsync for all of
 * them, and each caller is answered only after its batch has committed. If a batch fails, its
 * events are retried one by one, so a single bad event cannot take its neighbours' tokens with
 * it. Single-use claims (`claim`, as WriterThreadReplayGuard) are group-committed the same way,
 * each answered once its batch is durable; the alert store's calls (`alerts`) run there in turn.
 * One message carries all three kinds, and one reply answers them: a round trip per batch.
 *
 * With several broker processes, a follower's store sends its batches to the leader's writer
 * instead (`useSharedWriter`), which takes them into its own group commit (`serveShared`); while
 * no leader is connected, the follower starts a writer thread of its own, as before.
 *
 * Upkeep's reads that hash records (pruneCandidate, chainHolds over a span) run on a third thread (ChainCheckThread), off both.
 */
export class GroupCommitAuditStore extends SqliteAuditStore {
  readonly #path: string;
  readonly #dataDir: DataDirPin | undefined;
  readonly #onCommit: ((records: number) => void) | undefined;
  readonly #now: () => number;
  readonly #onWalCheckpointFailure: ((error: string) => void) | undefined;
  readonly #onUsageRollUpFailure: ((failure: UsageRollUpFailure) => void) | undefined;
  readonly #checks: ChainCheckThread;
  readonly #macKey: RecordMacKey | undefined;
  #writer: Worker | undefined;
  #shared: SharedWriterConnection | undefined;
  #joining: Promise<boolean> | undefined;
  #queues: { [K in Kind]: Of<K>[] } = { append: [], claim: [], alerts: [] };
  #inFlight = new Map<number, InFlight>();
  #batches = 0;
  #scheduled = false;
  /** How many appends at the front of the queue go one per transaction (after a failed batch). */
  #singles = 0;
  /** When the last commit failed, if the commit since has not succeeded. */
  #failedAt: number | undefined;
  #idle: (() => void)[] = [];
  #closed = false;

  /**
   * `db` serves reads, and its file is opened again, read-only, by the check thread; `path` is the same file, opened
   * again by the writer thread (and by the WAL checkpoint thread beside it, whose failures, harmless to the log,
   * `onWalCheckpointFailure` hears). Each thread opens it when it starts, and only while `dataDir`, the data directory
   * it is in, is still the one checked at start-up: a writer thread refuses to start otherwise, so nothing is committed.
   */
  constructor(
    db: SqliteFile,
    path: string,
    options: {
      dataDir?: DataDirPin;
      onCommit?: (records: number) => void;
      now?: () => number;
      onWalCheckpointFailure?: (error: string) => void;
      /** A batch of the usage roll-up the writer keeps between its batches failed (it tries again later). */
      onUsageRollUpFailure?: (failure: UsageRollUpFailure) => void;
      /** The record MAC keys, from the master key (never it): the writer MACs each record, upkeep's check thread checks them. */
      macKeys?: readonly RecordMacKey[];
      usage?: UsageRollUpLimits;
    } = {},
  ) {
    const macKeys = options.macKeys ?? [];
    super(db, {
      ...(macKeys.length === 0 ? {} : { macs: new RecordMacs(macKeys, { hmac: NODE_HMAC_SHA256 }) }),
      ...(options.usage === undefined ? {} : { usage: options.usage }),
    });
    this.#macKey = macKeys[0];
    this.#path = path;
    this.#dataDir = options.dataDir;
    this.#onCommit = options.onCommit;
    this.#now = options.now ?? Date.now;
    this.#onWalCheckpointFailure = options.onWalCheckpointFailure;
    this.#onUsageRollUpFailure = options.onUsageRollUpFailure;
    this.#checks = new ChainCheckThread(db.path, options.dataDir, macKeys);
  }

  /** False for a while after a commit failed (UNWRITABLE_AFTER_FAILURE_MS), unless one has succeeded since. */
  writable(): boolean {
    return this.#failedAt === undefined || this.#now() - this.#failedAt >= UNWRITABLE_AFTER_FAILURE_MS;
  }

  /** Appends, claims and alert calls waiting or being committed now. */
  get queued(): number {
    return [...this.#inFlight.values(), this.#queues].reduce((sum, work) => sum + work.append.length + work.claim.length + work.alerts.length, 0);
  }

  /**
   * How long the oldest write this process's writer thread has not answered yet (an append, a claim or an alert call,
   * sent or waiting behind what was) has waited, in seconds; 0 when none waits. A writer that commits answers within
   * SQLite's busy timeout; one that stays stuck (a disk that never returns) makes this grow without end, while the
   * event loop goes on. What waits for the leader's writer (useSharedWriter) is the leader's to count: such a batch fails
   * on its own within the shared writer's reply timeout.
   */
  oldestWaitSeconds(): number {
    const batches = [...[...this.#inFlight.values()].filter((batch) => !batch.shared), this.#queues];
    // Each list is in the order its work arrived (failed appends go back to the front of the queue, the oldest first).
    const oldest = Math.min(...batches.flatMap((batch) => KINDS.flatMap((kind) => batch[kind][0]?.since ?? [])));
    return oldest === Infinity ? 0 : (performance.now() - oldest) / 1000;
  }

  /** The event is encoded here, once: the writer hashes and stores that text (see canonicalEvent). */
  override append(event: AuditEvent): Promise<ChainLink> {
    return new Promise((resolve, reject) => this.#enqueue({ kind: 'append', event: canonicalEvent(event), resolve, reject }));
  }

  /** Each event queued as `append` queues it, all in this turn: they join the same group commits (MAX_BATCH records each). */
  override appendAll(events: readonly AuditEvent[]): Promise<ChainLink[]> {
    return Promise.all(events.map((event) => this.append(event)));
  }

  override pruneCandidate(before: number, maxRecords: number): Promise<PruneCandidate | undefined> {
    return this.#checks.run({ method: 'pruneCandidate', args: [before, maxRecords] });
  }

  /** A span of records on the check thread; the head check's (one record against its checkpoint, no hashing) here. */
  override chainHolds(from: ChainHead, to: ChainHead): Promise<void> {
    return to.seq === from.seq ? super.chainHolds(from, to) : this.#checks.run({ method: 'chainHolds', args: [from, to] });
  }

  /** The MACs of a span of records on the check thread. */
  override recordMacsHold(afterSeq: number, toSeq: number, macsAfter?: number): Promise<number> {
    return toSeq === afterSeq
      ? super.recordMacsHold(afterSeq, toSeq, macsAfter)
      : this.#checks.run({ method: 'recordMacsHold', args: [afterSeq, toSeq, macsAfter] });
  }

  /** Claims a subject token for single use, durably (synchronous=FULL) before it answers; see SqliteReplayGuard. */
  claim(claim: ReplayClaim): Promise<ReplayClaimResult> {
    return new Promise((resolve, reject) => this.#enqueue({ kind: 'claim', claim, resolve, reject }));
  }

  /** One of the alert store's calls, on the writer's connection. */
  alerts<M extends AlertCall['method']>(call: Extract<AlertCall, { method: M }>): ReturnType<AlertStore[M]> {
    return new Promise<unknown>((resolve, reject) => this.#enqueue({ kind: 'alerts', call, resolve, reject })) as ReturnType<AlertStore[M]>;
  }

  /**
   * A follower's batch, taken into this store's group commit piece by piece and answered once every
   * piece is: each as this process's own callers are (an append that fails in its batch is retried
   * alone here, so a reply never leaves the follower to guess which of its appends were committed).
   * An event is taken only as `canonicalEvent` makes it (checkedCanonicalEvent): one that is not is
   * answered with an error, as an append that failed, and nothing of it is stored.
   */
  async serveShared(request: WriterRequest): Promise<SharedWriterReply> {
    const outcome = <T>(work: (resolve: (value: T) => void, reject: (error: unknown) => void) => void): Promise<Outcome<T>> =>
      new Promise<T>((resolve, reject) => (this.#closed ? reject(new Error('the audit log is closed')) : work(resolve, reject))).then(
        // JSON has no undefined: a call that returns nothing is answered null.
        (result) => ({ result: result ?? (null as T) }),
        (error: unknown) => ({ error: errorText(error) }),
      );
    const [appended, claims, alerts] = await Promise.all([
      Promise.all(
        request.events.map((sent) =>
          outcome<ChainLink>((resolve, reject) => this.#enqueue({ kind: 'append', event: checkedCanonicalEvent(sent), resolve, reject })),
        ),
      ),
      Promise.all(request.claims.map((claim) => outcome<ReplayClaimResult>((resolve, reject) => this.#enqueue({ kind: 'claim', claim, resolve, reject })))),
      Promise.all(request.alerts.map((call) => outcome<unknown>((resolve, reject) => this.#enqueue({ kind: 'alerts', call, resolve, reject })))),
    ]);
    return { batch: request.batch, appended, claims, alerts };
  }

  /**
   * Sends the batches from now on to the leader's writer over `connect`'s connection, if it makes
   * one. When that connection ends, the batch it carried fails (whether the leader committed it
   * cannot be known, so nobody is told it did) and the batches after it go to a writer thread of this
   * process's own until a leader is connected again.
   */
  useSharedWriter(
    connect: (onReply: (reply: SharedWriterReply) => void, onClose: () => void) => Promise<SharedWriterConnection | undefined>,
  ): Promise<boolean> {
    this.#joining ??= this.#join(connect).finally(() => {
      this.#joining = undefined;
    });
    return this.#joining;
  }

  async #join(connect: Parameters<GroupCommitAuditStore['useSharedWriter']>[0]): Promise<boolean> {
    if (this.#shared !== undefined || this.#closed) return this.#shared !== undefined;
    let connection: SharedWriterConnection | undefined;
    connection = await connect(
      (reply) => this.#settleShared(reply),
      () => {
        if (this.#shared !== connection) return;
        this.#shared = undefined;
        this.#failShared(new Error('the connection to the shared audit writer ended'));
      },
    );
    if (connection === undefined || this.#closed) {
      connection?.close();
      return false;
    }
    this.#shared = connection;
    return true;
  }

  /** Whether batches go to the leader's writer now. */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /** Commits every append, claim and alert call already made (the group commit flushed), then stops the writer and check threads. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.queued > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    const writer = this.#writer;
    this.#writer = undefined;
    const shared = this.#shared;
    this.#shared = undefined;
    shared?.close();
    await Promise.all([writer === undefined ? undefined : stopThread(writer, WRITER_STOPS_WITHIN_MS), this.#checks.close()]);
    this.#fail(new Error('the audit log is closed'));
  }

  /** Refused once closed: a writer thread started for it would be one nothing stops. */
  #enqueue(work: NewWork): void {
    if (this.#closed) {
      work.reject(new Error('the audit log is closed'));
      return;
    }
    (this.#queues[work.kind] as Work[]).push({ ...work, since: performance.now() });
    this.#schedule();
  }

  /**
   * Sends what waits once this turn of the event loop has added all it will. To this process's
   * writer one batch at a time (what arrives meanwhile is the next batch); to the leader's without
   * waiting for the batch before it, since the leader batches what its followers send with its own
   * (waiting would add a round trip, and a commit, to every follower batch).
   */
  #schedule(): void {
    if (!this.#scheduled && (this.#inFlight.size === 0 || this.#shared !== undefined)) {
      this.#scheduled = true;
      setImmediate(() => this.#send());
    }
  }

  #send(): void {
    this.#scheduled = false;
    this.#next();
  }

  #thread(): Worker {
    if (this.#writer !== undefined) return this.#writer;
    const writer = new Worker(new URL('./audit-writer.ts', import.meta.url), {
      workerData: { path: this.#path, dataDir: this.#dataDir, macKey: this.#macKey } satisfies WriterData,
    });
    writer.on('message', (message: WriterMessage) => {
      if ('walCheckpointFailed' in message) this.#onWalCheckpointFailure?.(message.walCheckpointFailed);
      else if ('usageRollUpFailed' in message) this.#onUsageRollUpFailure?.(message);
      else this.#settle(message);
    });
    writer.on('error', (error) => this.#fail(error));
    writer.on('exit', () => {
      if (this.#writer === writer) this.#writer = undefined;
      this.#fail(new Error('the audit writer stopped'));
    });
    writer.unref();
    this.#writer = writer;
    return writer;
  }

  #settle(reply: WriterReply): void {
    const batch = this.#inFlight.get(reply.batch);
    this.#inFlight.delete(reply.batch);
    if (batch !== undefined) {
      const { appended } = reply;
      if ('result' in appended) {
        if (batch.append.length > 0) {
          this.#failedAt = undefined;
          this.#onCommit?.(batch.append.length);
        }
        for (const [index, work] of batch.append.entries()) work.resolve(appended.result[index] as ChainLink);
      } else if (batch.append.length > 1) {
        // Retried one event per transaction, so that one bad event fails alone.
        this.#queues.append.unshift(...batch.append);
        this.#singles += batch.append.length;
      } else {
        this.#failedAt = this.#now();
        for (const work of batch.append) work.reject(new Error(appended.error));
      }
      for (const [index, work] of batch.claim.entries()) settleWith(work, reply.claims[index]);
      for (const [index, work] of batch.alerts.entries()) settleWith(work, reply.alerts[index]);
    }
    this.#next();
  }

  /** Throws, settling nothing, on a reply that does not answer its batch piece by piece (the connection then ends, failing the batch). */
  #settleShared(reply: SharedWriterReply): void {
    const batch = this.#inFlight.get(reply.batch);
    if (
      batch !== undefined &&
      !(batch.shared && answers(reply.appended, batch.append.length) && answers(reply.claims, batch.claim.length) && answers(reply.alerts, batch.alerts.length))
    ) {
      throw new TypeError('a shared writer reply that does not answer its batch');
    }
    this.#inFlight.delete(reply.batch);
    if (batch !== undefined) {
      let committed = 0;
      for (const [index, work] of batch.append.entries()) {
        const outcome = reply.appended[index];
        if (outcome !== undefined && 'result' in outcome) committed += 1;
        else this.#failedAt = this.#now();
        settleWith(work, outcome);
      }
      if (committed > 0) {
        if (committed === batch.append.length) this.#failedAt = undefined;
        this.#onCommit?.(committed);
      }
      for (const [index, work] of batch.claim.entries()) settleWith(work, reply.claims[index]);
      for (const [index, work] of batch.alerts.entries()) settleWith(work, reply.alerts[index]);
    }
    this.#next();
  }

  /** The batches in flight to the leader's writer fail; what waits goes to this process's writer. */
  #failShared(error: unknown): void {
    for (const [id, batch] of this.#inFlight) {
      if (!batch.shared) continue;
      this.#inFlight.delete(id);
      for (const work of [...batch.append, ...batch.claim, ...batch.alerts]) work.reject(error);
    }
    this.#next();
  }

  #next(): void {
    if (this.queued === 0) for (const resolve of this.#idle.splice(0)) resolve();
    if ((this.#inFlight.size > 0 && this.#shared === undefined) || KINDS.every((kind) => this.#queues[kind].length === 0)) return;
    const appends = this.#singles > 0 ? 1 : MAX_BATCH;
    if (this.#singles > 0) this.#singles -= 1;
    const shared = this.#shared;
    const batch: InFlight = {
      append: this.#queues.append.splice(0, appends),
      claim: this.#queues.claim.splice(0, MAX_BATCH),
      alerts: this.#queues.alerts.splice(0, MAX_BATCH),
      shared: shared !== undefined,
    };
    this.#batches += 1;
    const id = this.#batches;
    this.#inFlight.set(id, batch);
    const request: WriterRequest = {
      batch: id,
      events: batch.append.map((work) => work.event),
      claims: batch.claim.map((work) => work.claim),
      alerts: batch.alerts.map((work) => work.call),
    };
    if (shared === undefined) this.#thread().postMessage(request);
    else {
      shared.send(request);
      // More than one batch waited (or some waited to go one by one).
      this.#schedule();
    }
  }

  #fail(error: unknown): void {
    this.#failedAt = this.#now();
    const waiting: Work[] = [...this.#inFlight.values(), this.#queues].flatMap((work): Work[] => [...work.append, ...work.claim, ...work.alerts]);
    this.#inFlight.clear();
    this.#queues = { append: [], claim: [], alerts: [] };
    this.#singles = 0;
    for (const work of waiting) work.reject(error);
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
