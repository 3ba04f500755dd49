import type { AuditStore } from './audit-event.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { CheckpointSigner } from './sign-checkpoint.ts';

export interface AuditMaintenance {
  /** Records pruned this round. */
  readonly pruned: number;
  /** The checkpoint signed this round, if the head had moved. */
  readonly checkpoint?: Checkpoint;
}

/** Records pruned per round at most, so one round never holds the writer for long. */
export const PRUNE_BATCH = 5000;
const DAY_MS = 86_400_000;

/**
 * One round of upkeep, run on a timer (Node) or an alarm (Workers): prune what has left the
 * retention window, anchoring the rest in a checkpoint on the last pruned record, then sign
 * a checkpoint of the head if it moved since the last one. A prune the store refuses (records
 * that do not hold, pruneCandidate) is thrown once the head is signed.
 */
export async function maintainAuditLog(
  store: AuditStore,
  sign: CheckpointSigner,
  options: { readonly now: number; readonly retentionDays: number },
): Promise<AuditMaintenance> {
  let pruned = 0;
  let pruneFailure: { readonly error: unknown } | undefined;
  if (options.retentionDays > 0) {
    try {
      const candidate = await store.pruneCandidate(options.now - options.retentionDays * DAY_MS, PRUNE_BATCH);
      if (candidate !== undefined) pruned = await store.prune(await sign(candidate, 'anchor'));
    } catch (error) {
      // The head is still signed: new records stay pinned while the old ones wait for someone to look.
      pruneFailure = { error };
    }
  }
  const head = await store.head();
  const latest = await store.latestCheckpoint();
  const checkpoint = head.seq === 0 || (latest !== undefined && latest.seq >= head.seq) ? undefined : await sign(head);
  if (checkpoint !== undefined) await store.addCheckpoint(checkpoint);
  if (pruneFailure !== undefined) throw pruneFailure.error;
  return checkpoint === undefined ? { pruned } : { pruned, checkpoint };
}
