import { parentPort, workerData } from 'node:worker_threads';
import { ChainConflictError } from '../../core/audit/chain-conflict-error.ts';
import { errorText } from '../../core/log.ts';
import { openInDataDirSync } from '../../storage/private-data-dir.ts';
import { openSqliteFile } from '../../storage/sqlite-file.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import type { ChainCheckerData, ChainCheckReply, ChainCheckRequest } from './chain-check-thread.ts';
import { NODE_HMAC_SHA256, NODE_JWT_CRYPTO } from './node-jwt-crypto.ts';
import { RecordMacs } from '../../core/audit/record-mac.ts';
import { isStopRequest, type StopRequest } from './thread-stop.ts';

/** The thread of ChainCheckThread: the audit store's hashing reads, on a read-only connection, with Node's own SHA-256. */
const { path, dataDir, macKeys } = workerData as ChainCheckerData;
const db = openInDataDirSync(
  dataDir,
  () => openSqliteFile(path, { readonly: true }),
  (opened) => opened.close(),
);
const store = new SqliteAuditStore(db, {
  sha256: NODE_JWT_CRYPTO.sha256Hex,
  ...(macKeys.length === 0 ? {} : { macs: new RecordMacs(macKeys, { hmac: NODE_HMAC_SHA256 }) }),
});

async function serve({ id, check }: ChainCheckRequest): Promise<ChainCheckReply> {
  try {
    const result =
      check.method === 'chainHolds'
        ? await store.chainHolds(...check.args)
        : check.method === 'recordMacsHold'
          ? await store.recordMacsHold(...check.args)
          : await store.pruneCandidate(...check.args);
    return { id, result };
  } catch (error) {
    return error instanceof ChainConflictError ? { id, error: error.message, conflict: true } : { id, error: errorText(error), conflict: false };
  }
}

parentPort?.on('message', async (request: ChainCheckRequest | StopRequest) => {
  if (!isStopRequest(request)) return parentPort?.postMessage(await serve(request));
  // ChainCheckThread's close (stopThread): the thread ends once nothing is left to run.
  db.close();
  parentPort?.close();
});
