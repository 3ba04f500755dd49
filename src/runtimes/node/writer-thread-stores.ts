import type { AlertStore } from '../../features/alerts/alert-store.ts';
import type { ReplayGuard } from '../../core/replay/replay-guard.ts';
import type { SqlDatabase } from '../../storage/sql-database.ts';
import { SqliteAlertStore } from '../../storage/sqlite-alert-store.ts';
import type { GroupCommitAuditStore } from './group-commit-audit-store.ts';

/**
 * Single use on Node: SqliteReplayGuard's claims, made on the audit writer's thread and connection,
 * group-committed (one transaction and one fsync for the claims that arrive together), each answered
 * once it is durable. The thread serving HTTP never waits on the disk for them.
 */
export function writerThreadReplayGuard(writer: GroupCommitAuditStore): ReplayGuard {
  return {
    claim: (claim) => writer.claim(claim),
    // Queued in one turn, so they join the same group commits.
    claimAll: (claims) => Promise.all(claims.map((claim) => writer.claim(claim))),
  };
}

/**
 * Alert state on Node: SqliteAlertStore, whose writes (and the reads that decide them) run on the
 * audit writer's thread, after the records they look at are committed (upkeep's prune too: a delete of
 * thousands of rows, or a wait for the writer's lock, never holds the serving thread); the list of
 * alerts is read on `reads`, the serving thread's connection.
 */
export function writerThreadAlertStore(writer: GroupCommitAuditStore, reads: SqlDatabase): AlertStore {
  const local = new SqliteAlertStore(reads);
  return {
    // The writer appended the event itself: only its link goes over, not the event again.
    observe: (_event, link, options) => writer.alerts({ method: 'observe', args: [link, options] }),
    addAlerts: (...args) => writer.alerts({ method: 'addAlerts', args }),
    setDelivery: (...args) => writer.alerts({ method: 'setDelivery', args }),
    pruneAlerts: (...args) => writer.alerts({ method: 'pruneAlerts', args }),
    alerts: (limit) => local.alerts(limit),
  };
}
