import { Worker } from 'node:worker_threads';
import type { AuditStore } from '../../core/audit/audit-event.ts';
import { ChainConflictError } from '../../core/audit/chain-conflict-error.ts';
import type { DataDirPin } from '../../storage/private-data-dir.ts';
import { stopThread } from './thread-stop.ts';
import type { RecordMacKey } from '../../core/audit/record-mac.ts';

/** The audit store's reads that hash records (upkeep's): what the check thread runs. */
export type ChainCheck = { [M in CheckMethod]: { readonly method: M; readonly args: Parameters<AuditStore[M]> } }[CheckMethod];
type CheckMethod = 'pruneCandidate' | 'chainHolds' | 'recordMacsHold';

/** What the check thread is started with: the database file, and the data directory it must be in (as the writer's). */
export interface ChainCheckerData {
  readonly path: string;
  readonly dataDir: DataDirPin | undefined;
  /** The record MAC keys (derived from the master key, never it), the current first; none: records' MACs are not checked. */
  readonly macKeys: readonly RecordMacKey[];
}

export interface ChainCheckRequest {
  readonly id: number;
  readonly check: ChainCheck;
}

/** The check's result, or why it failed: `conflict` when the records do not hold (a ChainConflictError, its message). */
export type ChainCheckReply = { readonly id: number } & ({ readonly result: unknown } | { readonly error: string; readonly conflict: boolean });

/** How long the thread has to stop on close (a check under way runs to its end first) before it is terminated. */
const STOPS_WITHIN_MS = 5_000;

/**
 * Upkeep's hashing reads on Node (the prune candidate, the span from it to the pin, the MACs of the records after the
 * newest checkpoint), run on a thread of their own with a read-only connection to the broker's file: hashing a checkpoint
 * interval of records takes the better part of a second, which on the serving thread would stall every request, and on
 * the writer thread every append. A read in WAL mode keeps no writer waiting. The thread starts with the first check, in
 * the leader's first round that signs a checkpoint or prunes, and stays: never in a follower.
 */
export class ChainCheckThread {
  readonly #path: string;
  readonly #dataDir: DataDirPin | undefined;
  readonly #macKeys: readonly RecordMacKey[];
  #thread: Worker | undefined;
  #calls = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  #ids = 0;

  constructor(path: string, dataDir: DataDirPin | undefined, macKeys: readonly RecordMacKey[]) {
    this.#path = path;
    this.#dataDir = dataDir;
    this.#macKeys = macKeys;
  }

  /** Runs the check on the thread; a ChainConflictError there is one here. */
  run<M extends ChainCheck['method']>(check: Extract<ChainCheck, { method: M }>): ReturnType<AuditStore[M]> {
    return new Promise<unknown>((resolve, reject) => {
      this.#ids += 1;
      this.#calls.set(this.#ids, { resolve, reject });
      this.#started().postMessage({ id: this.#ids, check } satisfies ChainCheckRequest);
    }) as ReturnType<AuditStore[M]>;
  }

  /** Stops the thread once a check under way has ended (it is answered), or terminates it after STOPS_WITHIN_MS (the check fails). */
  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread !== undefined) await stopThread(thread, STOPS_WITHIN_MS);
  }

  #started(): Worker {
    if (this.#thread !== undefined) return this.#thread;
    const thread = new Worker(new URL('./chain-checker.ts', import.meta.url), {
      workerData: { path: this.#path, dataDir: this.#dataDir, macKeys: this.#macKeys } satisfies ChainCheckerData,
    });
    thread.on('message', (reply: ChainCheckReply) => {
      const call = this.#calls.get(reply.id);
      this.#calls.delete(reply.id);
      if ('result' in reply) call?.resolve(reply.result);
      else call?.reject(reply.conflict ? new ChainConflictError(reply.error) : new Error(reply.error));
    });
    const fail = (error: Error) => {
      if (this.#thread === thread) this.#thread = undefined;
      for (const call of this.#calls.values()) call.reject(error);
      this.#calls.clear();
    };
    thread.on('error', fail);
    thread.on('exit', () => fail(new Error('the audit chain check thread stopped')));
    thread.unref();
    this.#thread = thread;
    return thread;
  }
}
