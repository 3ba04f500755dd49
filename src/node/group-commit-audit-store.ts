import { Worker } from 'node:worker_threads';
import type { AlertStore } from '../alerts/alert-store.ts';
import type { AuditEvent, ChainLink } from '../audit/audit-event.ts';
import type { ReplayClaim, ReplayClaimResult } from '../replay/replay-guard.ts';
import type { SqlDatabase } from '../storage/sql-database.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import type { AlertCall, WriterReply, WriterRequest } from './audit-writer.ts';

/** What waits for the writer thread, by kind: appends and claims go in batches, alert calls one at a time. */
type Work =
  | { readonly kind: 'append'; readonly event: AuditEvent; readonly resolve: (link: ChainLink) => void; readonly reject: (error: unknown) => void }
  | { readonly kind: 'claim'; readonly claim: ReplayClaim; readonly resolve: (result: ReplayClaimResult) => void; readonly reject: (error: unknown) => void }
  | { readonly kind: 'alerts'; readonly call: AlertCall; readonly resolve: (result: unknown) => void; readonly reject: (error: unknown) => void };
type Kind = Work['kind'];
type Of<K extends Kind> = Extract<Work, { kind: K }>;

const MAX_BATCH = 512;
const KINDS: readonly Kind[] = ['append', 'claim', 'alerts'];

/**
 * The Node audit log, and the one writer of the broker's SQLite file. Reads run on the caller's
 * connection; appends go to a single writer thread with group commit: the appends that arrive
 * while it commits one batch become the next batch, one transaction and one WAL fsync for all of
 * them, and each caller is answered only after its batch has committed. If a batch fails, its
 * events are retried one by one, so a single bad event cannot take its neighbours' tokens with
 * it. Single-use claims (`claim`, as WriterThreadReplayGuard) are group-committed the same way,
 * each answered once its batch is durable; the alert store's writes (`alerts`) run there one by
 * one. Kinds take turns, so none waits behind a stream of another.
 */
export class GroupCommitAuditStore extends SqliteAuditStore {
  readonly #path: string;
  readonly #onCommit: ((records: number) => void) | undefined;
  #writer: Worker | undefined;
  #queues: { [K in Kind]: Of<K>[] } = { append: [], claim: [], alerts: [] };
  #inFlight = new Map<number, Work[]>();
  #batches = 0;
  #scheduled = false;
  /** The kind that went last: the next turn starts after it. */
  #turn = KINDS.length - 1;
  /** How many appends at the front of the queue go one per transaction (after a failed batch). */
  #singles = 0;

  /** `db` serves reads; `path` is the same file, opened again by the writer thread. */
  constructor(db: SqlDatabase, path: string, options: { onCommit?: (records: number) => void } = {}) {
    super(db);
    this.#path = path;
    this.#onCommit = options.onCommit;
  }

  override append(event: AuditEvent): Promise<ChainLink> {
    return new Promise((resolve, reject) => this.#enqueue({ kind: 'append', event, resolve, reject }));
  }

  /** Claims a subject token for single use, durably (synchronous=FULL) before it answers; see SqliteReplayGuard. */
  claim(claim: ReplayClaim): Promise<ReplayClaimResult> {
    return new Promise((resolve, reject) => this.#enqueue({ kind: 'claim', claim, resolve, reject }));
  }

  /** One of the alert store's calls, on the writer's connection. */
  alerts<M extends AlertCall['method']>(method: M, ...args: Parameters<AlertStore[M]>): ReturnType<AlertStore[M]> {
    return new Promise<unknown>((resolve, reject) => this.#enqueue({ kind: 'alerts', call: { method, args } as AlertCall, resolve, reject })) as ReturnType<AlertStore[M]>;
  }

  /** Stops the writer thread; work still waiting is refused. */
  async close(): Promise<void> {
    const writer = this.#writer;
    this.#writer = undefined;
    await writer?.terminate();
    this.#fail(new Error('the audit log is closed'));
  }

  #enqueue(work: Work): void {
    (this.#queues[work.kind] as Work[]).push(work);
    if (!this.#scheduled && this.#inFlight.size === 0) {
      this.#scheduled = true;
      setImmediate(() => this.#send());
    }
  }

  #send(): void {
    this.#scheduled = false;
    this.#next();
  }

  #post(batch: Work[], request: (id: number) => WriterRequest): void {
    const id = (this.#batches += 1);
    this.#inFlight.set(id, batch);
    this.#thread().postMessage(request(id));
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
        this.#onCommit?.(batch.length);
        batch.forEach((work, index) => (work as Of<'append'>).resolve(reply.links[index] as ChainLink));
      } else if ('claims' in reply) {
        batch.forEach((work, index) => {
          const outcome = reply.claims[index];
          if (outcome !== undefined && 'result' in outcome) (work as Of<'claim'>).resolve(outcome.result);
          else work.reject(new Error(outcome?.error ?? 'no answer for the claim'));
        });
      } else if ('result' in reply) {
        batch[0]?.resolve(reply.result as never);
      } else if (batch.length > 1 && batch[0]?.kind === 'append') {
        // Retried one event per transaction, so that one bad event fails alone.
        this.#queues.append.unshift(...(batch as Of<'append'>[]));
        this.#singles += batch.length;
      } else {
        for (const work of batch) work.reject(new Error(reply.error));
      }
    }
    this.#next();
  }

  #next(): void {
    if (this.#inFlight.size > 0) return;
    for (let step = 1; step <= KINDS.length; step += 1) {
      const kind = KINDS[(this.#turn + step) % KINDS.length] as Kind;
      if (this.#queues[kind].length === 0) continue;
      this.#turn = KINDS.indexOf(kind);
      if (kind === 'append') {
        const size = this.#singles > 0 ? 1 : MAX_BATCH;
        if (this.#singles > 0) this.#singles -= 1;
        const batch = this.#queues.append.splice(0, size);
        this.#post(batch, (id) => ({ batch: id, events: batch.map((work) => JSON.stringify(work.event)) }));
      } else if (kind === 'claim') {
        const batch = this.#queues.claim.splice(0, MAX_BATCH);
        this.#post(batch, (id) => ({ batch: id, claims: batch.map((work) => work.claim) }));
      } else {
        const batch = this.#queues.alerts.splice(0, 1);
        this.#post(batch, (id) => ({ batch: id, alerts: (batch[0] as Of<'alerts'>).call }));
      }
      return;
    }
  }

  #fail(error: unknown): void {
    const waiting: Work[] = [...[...this.#inFlight.values()].flat(), ...KINDS.flatMap((kind): Work[] => this.#queues[kind])];
    this.#inFlight.clear();
    this.#queues = { append: [], claim: [], alerts: [] };
    this.#singles = 0;
    for (const work of waiting) work.reject(error);
  }
}
