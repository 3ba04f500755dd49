import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import { openSqliteFile } from '../../storage/sqlite-file.ts';

/** What the broker's main thread sends: a batch of events, as JSON text, to append in one transaction. */
export interface WriterRequest {
  readonly batch: number;
  readonly events: readonly string[];
}

export type WriterReply =
  | { readonly batch: number; readonly links: import('../../core/audit/audit-event.ts').ChainLink[] }
  | { readonly batch: number; readonly error: string };

/**
 * The audit log's single writer, on its own thread with its own connection: hashing and the
 * WAL fsync of each batch happen here, so the thread serving HTTP never waits on the disk.
 */
const db = openSqliteFile((workerData as { path: string }).path);
// Index pages of random keys (jti, SHA-256) are touched all over; keep more of them in memory.
db.exec('PRAGMA cache_size = -65536');
const store = new SqliteAuditStore(db, { sha256: (text) => createHash('sha256').update(text).digest('hex') });
parentPort?.on('message', async (request: WriterRequest) => {
  let reply: WriterReply;
  try {
    reply = { batch: request.batch, links: await store.appendJson(request.events) };
  } catch (error) {
    reply = { batch: request.batch, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  parentPort?.postMessage(reply);
});
