import type { AuditStore } from './audit-event.ts';
import type { ChainHead, Checkpoint } from './checkpoint.ts';
import type { CheckpointSigner, CheckpointVerifier } from './sign-checkpoint.ts';
import { CheckpointError, type VerifiedCheckpoint } from './verify-checkpoint.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export interface AuditMaintenance {
  /** Records pruned this round. */
  readonly pruned: number;
  /** The checkpoint signed this round, if the head had moved. */
  readonly checkpoint?: Checkpoint;
}

/** The stored checkpoints went back past one this process signed: someone who can write the store deleted them. */
export class CheckpointsRolledBackError extends KeywayError {
  override readonly name = 'CheckpointsRolledBackError';
  readonly code = 'audit_checkpoints_rolled_back';
}

/** The last checkpoint a process signed, kept from round to round (Node's broker keeps one; a Workers cron round starts without). */
export interface SignedSoFar {
  last?: ChainHead;
}

/** Records pruned per round at most, so one round never holds the writer for long. */
export const PRUNE_BATCH = 5000;
const DAY_MS = 86_400_000;

/**
 * One round of upkeep, run on a timer (Node) or an alarm (Workers): sign a checkpoint of the head if it moved since the
 * last one, then prune what has left the retention window, anchoring the rest in a checkpoint on the last pruned record.
 *
 * The chain's hashes need no key, so whoever can write the store can re-hash records; only the broker's signatures pin
 * them. So nothing is signed over records re-hashed since the broker last signed: the head only while the record the
 * latest checkpoint covers still has the hash it signed, and an anchor (after which the records before it, and the
 * checkpoints over them, are gone) only once the records after the candidate link to a later checkpoint (the first at
 * or after it, else the latest) and that record has the hash it signed, each as its signature, checked here, vouches.
 * A checkpoint no key of the broker's verifies (one signed by a key an older keyway removed unattested) is passed over.
 * What this cannot see is checkpoints deleted from the store: `signedSoFar` catches those while the process that signed
 * them runs, and checkpoints kept elsewhere do otherwise. Records that do not hold are a ChainConflictError: nothing
 * more is signed or pruned this round, and the round fails (logged) until someone looks.
 */
export async function maintainAuditLog(
  store: AuditStore,
  sign: CheckpointSigner,
  options: { readonly now: number; readonly retentionDays: number; readonly verify: CheckpointVerifier; readonly signedSoFar?: SignedSoFar },
): Promise<AuditMaintenance> {
  const verified = async (checkpoint: Checkpoint | undefined): Promise<VerifiedCheckpoint | undefined> => {
    try {
      return checkpoint === undefined ? undefined : await options.verify(checkpoint);
    } catch (error) {
      if (error instanceof CheckpointError) return undefined;
      throw error;
    }
  };
  const remembered = options.signedSoFar;
  const head = await store.head();
  const latest = await store.latestCheckpoint();
  if (remembered?.last !== undefined && (latest === undefined || latest.seq < remembered.last.seq)) {
    throw new CheckpointsRolledBackError(
      `the latest checkpoint stored is at seq ${latest?.seq ?? 0}, but this broker signed one at seq ${remembered.last.seq}: checkpoints were deleted from the store`,
    );
  }
  let checkpoint: Checkpoint | undefined;
  if (head.seq > 0 && (latest === undefined || latest.seq < head.seq)) {
    // The record the last signature covers still has the hash it signed. Nothing more: a record edited after it (links
    // broken, or content no longer its hash) stays for audit verify to find, which signing the head hides nothing of.
    const reference = (await verified(latest)) ?? remembered?.last;
    if (reference !== undefined) await store.chainHolds(reference, reference);
    checkpoint = await sign(head);
    await store.addCheckpoint(checkpoint);
    if (remembered !== undefined) remembered.last = head;
  }
  let pruned = 0;
  if (options.retentionDays > 0) {
    const candidate = await store.pruneCandidate(options.now - options.retentionDays * DAY_MS, PRUNE_BATCH);
    const [first] = candidate === undefined ? [] : await store.checkpoints(candidate.seq - 1, 1);
    const pin = candidate === undefined ? undefined : ((await verified(first)) ?? (await verified(await store.latestCheckpoint())));
    if (candidate !== undefined && pin !== undefined && pin.seq >= candidate.seq) {
      await store.chainHolds(candidate, pin);
      pruned = await store.prune(await sign(candidate, 'anchor'));
    }
  }
  return checkpoint === undefined ? { pruned } : { pruned, checkpoint };
}
