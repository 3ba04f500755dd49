import { Worker } from 'node:worker_threads';
import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import type { SqlDatabase } from '../../storage/sql-database.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import type { WriterReply, WriterRequest } from './audit-writer.ts';

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: (link: ChainLink) => void;
  readonly reject: (error: unknown) => void;
}

const MAX_BATCH = 512;

/**
 * How long after a failed commit the store reports itself unwritable (readiness 503). Readiness
 * never writes; after this the next append is the test, so a store that was fixed comes back.
 */
export const UNWRITABLE_AFTER_FAILURE_MS = 10_000;

/**
 * The Node audit log. Reads run on the caller's connection; appends go to a single writer
 * thread with group commit: the appends that arrive while it commits one batch become the
 * next batch, one transaction and one WAL fsync for all of them, and each caller is answered
 * only after its batch has committed. If a batch fails, its events are retried one by one,
 * so a single bad event cannot take its neighbours' tokens with it.
 */
export class GroupCommitAuditStore extends SqliteAuditStore {
  readonly #path: string;
  readonly #onCommit: ((records: number) => void) | undefined;
  readonly #now: () => number;
  #writer: Worker | undefined;
  #pending: Pending[] = [];
  #inFlight = new Map<number, Pending[]>();
  #batches = 0;
  #scheduled = false;
  /** How many events at the front of the queue go one per transaction (after a failed batch). */
  #singles = 0;
  /** When the last commit failed, if the commit since has not succeeded. */
  #failedAt: number | undefined;
  #idle: (() => void)[] = [];

  /** `db` serves reads; `path` is the same file, opened again by the writer thread. */
  constructor(db: SqlDatabase, path: string, options: { onCommit?: (records: number) => void; now?: () => number } = {}) {
    super(db);
    this.#path = path;
    this.#onCommit = options.onCommit;
    this.#now = options.now ?? Date.now;
  }

  /** False for a while after a commit failed (UNWRITABLE_AFTER_FAILURE_MS), unless one has succeeded since. */
  writable(): boolean {
    return this.#failedAt === undefined || this.#now() - this.#failedAt >= UNWRITABLE_AFTER_FAILURE_MS;
  }

  /** Appends waiting or being committed now. */
  get queued(): number {
    return this.#pending.length + [...this.#inFlight.values()].reduce((sum, batch) => sum + batch.length, 0);
  }

  override append(event: AuditEvent): Promise<ChainLink> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ event, resolve, reject });
      if (!this.#scheduled && this.#inFlight.size === 0) {
        this.#scheduled = true;
        setImmediate(() => this.#send());
      }
    });
  }

  /** Commits every append already made (the group commit flushed), then stops the writer thread. */
  async close(): Promise<void> {
    if (this.queued > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    const writer = this.#writer;
    this.#writer = undefined;
    await writer?.terminate();
    this.#fail(new Error('the audit log is closed'));
  }

  #send(): void {
    this.#scheduled = false;
    this.#next();
  }

  #post(batch: Pending[]): void {
    this.#batches += 1;
    const id = this.#batches;
    this.#inFlight.set(id, batch);
    const request: WriterRequest = { batch: id, events: batch.map((pending) => JSON.stringify(pending.event)) };
    this.#thread().postMessage(request);
  }

  #thread(): Worker {
    if (this.#writer !== undefined) return this.#writer;
    const writer = new Worker(new URL('./audit-writer.ts', import.meta.url), { workerData: { path: this.#path } });
    writer.on('message', (reply: WriterReply) => this.#settle(reply));
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
      if ('links' in reply) {
        this.#failedAt = undefined;
        this.#onCommit?.(batch.length);
        for (const [index, pending] of batch.entries()) pending.resolve(reply.links[index] as ChainLink);
      } else if (batch.length === 1) {
        this.#failedAt = this.#now();
        batch[0]?.reject(new Error(reply.error));
      } else {
        // Retried one event per transaction, so that one bad event fails alone.
        this.#pending.unshift(...batch);
        this.#singles += batch.length;
      }
    }
    this.#next();
  }

  #next(): void {
    if (this.queued === 0) for (const resolve of this.#idle.splice(0)) resolve();
    if (this.#inFlight.size > 0 || this.#pending.length === 0) return;
    const size = this.#singles > 0 ? 1 : MAX_BATCH;
    if (this.#singles > 0) this.#singles -= 1;
    this.#post(this.#pending.splice(0, size));
  }

  #fail(error: unknown): void {
    this.#failedAt = this.#now();
    const waiting = [...[...this.#inFlight.values()].flat(), ...this.#pending];
    this.#inFlight.clear();
    this.#pending = [];
    this.#singles = 0;
    for (const pending of waiting) pending.reject(error);
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
