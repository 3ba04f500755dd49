import type { AuditStore } from './audit-event.ts';
import { GENESIS_HASH } from './chain-hash.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { CheckpointSigner, CheckpointVerifier } from './sign-checkpoint.ts';

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
 * One round of upkeep, run on a timer (Node) or an alarm (Workers): sign a checkpoint of the head if it moved since the
 * last one, then prune what has left the retention window, anchoring the rest in a checkpoint on the last pruned record.
 *
 * The chain's hashes need no key, so whoever can write the store can re-hash records; only the broker's signatures pin
 * them. So nothing is signed over records the last signature does not reach: the head only once the records since the
 * latest checkpoint (its signature checked) chain from it, and an anchor only once the records up to the first
 * checkpoint at or after it chain to that one's signed hash. Records that do not hold are a ChainConflictError: nothing
 * more is signed or pruned, and the round fails (logged), every round until someone looks.
 */
export async function maintainAuditLog(
  store: AuditStore,
  sign: CheckpointSigner,
  options: { readonly now: number; readonly retentionDays: number; readonly verify: CheckpointVerifier },
): Promise<AuditMaintenance> {
  const head = await store.head();
  const latest = await store.latestCheckpoint();
  let checkpoint: Checkpoint | undefined;
  if (head.seq > 0 && (latest === undefined || latest.seq < head.seq)) {
    await store.chainHolds(latest === undefined ? { seq: 0, hash: GENESIS_HASH } : await options.verify(latest), head);
    checkpoint = await sign(head);
    await store.addCheckpoint(checkpoint);
  }
  let pruned = 0;
  if (options.retentionDays > 0) {
    const candidate = await store.pruneCandidate(options.now - options.retentionDays * DAY_MS, PRUNE_BATCH);
    // The first checkpoint at or after it: the head's, signed above, if no older one is.
    const [pin] = candidate === undefined ? [] : await store.checkpoints(candidate.seq - 1, 1);
    if (candidate !== undefined && pin !== undefined) {
      await store.chainHolds(candidate, await options.verify(pin));
      pruned = await store.prune(await sign(candidate, 'anchor'));
    }
  }
  return checkpoint === undefined ? { pruned } : { pruned, checkpoint };
}
