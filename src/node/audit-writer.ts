import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { AlertStore } from '../alerts/alert-store.ts';
import type { ReplayClaim, ReplayClaimResult } from '../replay/replay-guard.ts';
import { SqliteAlertStore } from '../storage/sqlite-alert-store.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { SqliteReplayGuard } from '../storage/sqlite-replay-guard.ts';
import { openSqliteFile } from './sqlite-file.ts';

/** The alert store's writes, and its reads that come with them (observe remembers what it saw). */
export type AlertCall = { [M in 'observe' | 'addAlerts' | 'setDelivery']: { readonly method: M; readonly args: Parameters<AlertStore[M]> } }[
  'observe' | 'addAlerts' | 'setDelivery'
];

/**
 * What the broker's main thread sends: a batch of audit events (as JSON text) to append in one
 * transaction, a batch of single-use claims to make in one transaction, or one alert store call.
 */
export type WriterRequest =
  | { readonly batch: number; readonly events: readonly string[] }
  | { readonly batch: number; readonly claims: readonly ReplayClaim[] }
  | { readonly batch: number; readonly alerts: AlertCall };

/** Per claim, its result or why it failed (the batch committed: the others stand). */
export type ClaimOutcome = { readonly result: ReplayClaimResult } | { readonly error: string };

export type WriterReply =
  | { readonly batch: number; readonly links: import('../audit/audit-event.ts').ChainLink[] }
  | { readonly batch: number; readonly claims: ClaimOutcome[] }
  | { readonly batch: number; readonly result: unknown }
  | { readonly batch: number; readonly error: string };

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * The broker's single writer, on its own thread with its own connection: the audit log's appends
 * (hashing included), single-use claims and the alert store's writes, each batch committed with
 * its WAL fsync here, so the thread serving HTTP never waits on the disk.
 */
const db = openSqliteFile((workerData as { path: string }).path);
// Index pages of random keys (jti, SHA-256) are touched all over; keep more of them in memory.
db.exec('PRAGMA cache_size = -65536');
const store = new SqliteAuditStore(db, { sha256: (text) => createHash('sha256').update(text).digest('hex') });
const guard = new SqliteReplayGuard(db);
const alerts = new SqliteAlertStore(db);

async function serve(request: WriterRequest): Promise<WriterReply> {
  const { batch } = request;
  if ('events' in request) return { batch, links: await store.appendJson(request.events) };
  if ('claims' in request) {
    // One transaction, one fsync for the batch; each claim in a savepoint of its own, so one that fails fails alone.
    const outcomes = db.transaction(() =>
      request.claims.map((claim) => guard.claim(claim).then((result): ClaimOutcome => ({ result }), (error: unknown): ClaimOutcome => ({ error: describe(error) }))),
    );
    return { batch, claims: await Promise.all(outcomes) };
  }
  const call = request.alerts;
  const result = await (call.method === 'observe' ? alerts.observe(...call.args) : call.method === 'addAlerts' ? alerts.addAlerts(...call.args) : alerts.setDelivery(...call.args));
  return { batch, result };
}

parentPort?.on('message', async (request: WriterRequest) => {
  let reply: WriterReply;
  try {
    reply = await serve(request);
  } catch (error) {
    reply = { batch: request.batch, error: describe(error) };
  }
  parentPort?.postMessage(reply);
});
