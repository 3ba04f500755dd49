import type { AuditStore } from './audit-event.ts';
import type { ChainHead, Checkpoint } from './checkpoint.ts';
import type { CheckpointSigner, CheckpointVerifier } from './sign-checkpoint.ts';
import { CheckpointError, type VerifiedCheckpoint } from './verify-checkpoint.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { ChainConflictError } from './chain-conflict-error.ts';
import { lowestMacsStart } from './record-mac.ts';
import type { KeyWithdrawn } from '../mint/key-ring.ts';

export interface AuditMaintenance {
  /** Records pruned this round. */
  readonly pruned: number;
  /** The checkpoint signed this round, if the head had moved. */
  readonly checkpoint?: Checkpoint;
  /**
   * Where MACs start as the newest checkpoint signs it (this round's, else the newest the keys verify), when one signs it:
   * what a Workers round signs beside the chain's head in its root checkpoint.
   */
  readonly macsAfter?: number;
}

/** The stored checkpoints went back past one this process signed: someone who can write the store deleted them. */
export class CheckpointsRolledBackError extends KeywayError {
  override readonly name = 'CheckpointsRolledBackError';
  readonly code = 'audit_checkpoints_rolled_back';
}

/**
 * The newest checkpoint upkeep signed or found verified, kept from round to round: Node's broker keeps it in memory; a Workers
 * cron round reads and writes it in the state object (KeywayState), apart from the shards it is held against.
 */
export interface SignedSoFar {
  last?: ChainHead;
}

/** Records pruned per round at most, so one round never holds the writer for long. */
export const PRUNE_BATCH = 5000;
const DAY_MS = 86_400_000;

/** When the retention window of `retentionDays` (above 0) starts at `now`: what was signed or recorded before it is pruned. */
export function retentionStart(now: number, retentionDays: number): number {
  return now - retentionDays * DAY_MS;
}

/**
 * One round of upkeep, run on a timer (Node) or an alarm (Workers): sign a checkpoint of the head if it moved since the
 * last one, then prune what has left the retention window, anchoring the rest in a checkpoint on the last pruned record.
 *
 * The chain's hashes need no key, so whoever can write the store can re-hash records; only the broker's signatures pin
 * them, and only as they sign them (never a row's seq and hash columns). So:
 * - the head is signed only while the record of the newest checkpoint the broker's keys verify still has the hash it
 *   signed, and the newest checkpoint upkeep remembers (`signedSoFar`) is still there with its record's hash: one deleted,
 *   forged, re-labelled or replaced with another chain's behind its back fails every round that is given the memory (held
 *   by hash, not only by seq), before it signs or prunes; either record may be gone only where pruning's anchor stands for
 *   it (holdSigned);
 * - what a round prunes is found in the hashed records (pruneCandidate), and an anchor (after which the records before
 *   it, and the checkpoints over them, are gone) is signed only once the records after the candidate hold (each hashed
 *   and linked, chainHolds) up to a later checkpoint the keys verify (the first at or after it, else the newest) and
 *   that record has the hash it signed. A record rewritten and re-hashed between them breaks a link, the next record's
 *   own hash (its link mended) or the checkpoint's hash: the anchor is never signed over it.
 * - the head is signed only over records that carry the broker's MAC after the newest checkpoint (recordMacsHold), and
 *   every checkpoint signs where MACs start (`macs_after`), so that stripping the MACs off records and moving the
 *   store's own start past them vouches for nothing once a checkpoint signed it.
 * Checkpoints deleted while no broker ran (on Node; on Workers the memory outlives the round) are caught only by
 * checkpoints kept elsewhere. A checkpoint no key of the broker's verifies (an older keyway's removed, unattested key; a forged row) is
 * passed over. Records that do not hold are a ChainConflictError: the round signs and prunes nothing more, and fails
 * (logged) until someone looks. Records after the newest checkpoint without the broker's MAC leave only the head
 * unsigned: the records up to that checkpoint are pruned as ever (retention does not stop), and the round fails after.
 */
export async function maintainAuditLog(
  store: AuditStore,
  sign: CheckpointSigner,
  options: {
    readonly now: number;
    readonly retentionDays: number;
    readonly verify: CheckpointVerifier;
    readonly signedSoFar?: SignedSoFar;
    /**
     * Where MACs start as a statement signed apart from the store says (a Workers round: the newest root checkpoint's for
     * this shard): the records are held to the lower of it and the newest checkpoint's, so one whose checkpoints were
     * deleted (with no memory to tell, right after a restore) is not held to the start it stores, which its writer can raise.
     */
    readonly macsAfter?: number;
  },
): Promise<AuditMaintenance> {
  const verified = async (checkpoint: Checkpoint): Promise<VerifiedCheckpoint | undefined> => {
    try {
      return await options.verify(checkpoint);
    } catch (error) {
      if (error instanceof CheckpointError) return undefined;
      throw error;
    }
  };
  const remembered = options.signedSoFar;
  // The latest first: a checkpoint another round signs meanwhile is then never past the head read.
  const latest = await store.latestCheckpoint();
  const head = await store.head();
  const moved = head.seq > 0 && (latest === undefined || latest.seq < head.seq);
  // With a memory, every round is held to it, not only one that signs: pruning (and on Workers the round's root checkpoint)
  // would otherwise go on over a store that went back.
  const reference = latest === undefined || !(moved || remembered !== undefined) ? undefined : await newestVerified(store, latest, verified);
  if (remembered?.last !== undefined && (reference === undefined || reference.seq < remembered.last.seq)) {
    throw new CheckpointsRolledBackError(
      `the newest checkpoint stored is at seq ${reference?.seq ?? 0}, but this broker signed one at seq ${remembered.last.seq}: checkpoints were deleted from the store`,
    );
  }
  // A checkpoint past the head signs records that are not there: cut off the end, or a copy of another chain's (an unnamed
  // one verifies in every chain). Remembered, it would fail every round once taken out.
  if (reference !== undefined && reference.seq > head.seq) {
    throw new ChainConflictError(`a checkpoint signs record ${reference.seq}, but the log ends at ${head.seq}: records were cut off its end`);
  }
  // The records those signatures cover keep the hashes they signed, every round, not only one that signs: a copy of another
  // chain with a checkpoint as new as the one remembered passes by its seq alone. Nothing more: a record edited after them
  // (links broken, or content no longer its hash) stays for audit verify to find, which signing the head hides nothing of.
  for (const signed of [reference, remembered?.last]) if (signed !== undefined) await holdSigned(store, signed, verified);
  // Where the records start to carry the broker's MAC: as the newest checkpoint (and options.macsAfter) signed it, else as
  // the store remembers.
  const signedMacsAfter = lowestMacsStart([reference?.macsAfter, options.macsAfter]);
  let macsAfter = signedMacsAfter;
  let checkpoint: Checkpoint | undefined;
  let unsigned: ChainConflictError | undefined;
  if (moved) {
    // The records after the newest checkpoint are vouched for by their MACs alone: one the broker did not append (written
    // into the store while no broker ran, or restored) is not signed as its own. That leaves the head unsigned, not what
    // the newest checkpoint vouches for unpruned: the round prunes, then fails.
    try {
      macsAfter = await store.recordMacsHold(reference?.seq ?? 0, head.seq, macsAfter);
    } catch (error) {
      if (!(error instanceof ChainConflictError)) throw error;
      unsigned = error;
    }
    if (unsigned === undefined) {
      checkpoint = await sign(head, 'head', macsAfter);
      await store.addCheckpoint(checkpoint);
    }
  }
  // Remembered from here on: the head signed, else the newest checkpoint the keys verify (a memory seeded by a restarted
  // process, or a Workers round, covers the checkpoints it found too).
  const newest = checkpoint ?? reference;
  if (remembered !== undefined && newest !== undefined && newest.seq >= (remembered.last?.seq ?? 0)) remembered.last = { seq: newest.seq, hash: newest.hash };
  let pruned = 0;
  // With the head left unsigned, only a stored checkpoint the keys verify can pin what is pruned: with none, nothing is.
  if (options.retentionDays > 0 && (unsigned === undefined || reference !== undefined)) {
    const found = await store.pruneCandidate(retentionStart(options.now, options.retentionDays), PRUNE_BATCH);
    // A checkpoint after it the keys verify: the first at or after it, else the newest (the head's, if this round signed it).
    const [first] = found === undefined ? [] : await store.checkpoints(found.seq - 1, 1);
    const pin = found === undefined ? undefined : ((first && (await verified(first))) ?? checkpoint ?? (latest && (await verified(latest))));
    // Before it only with the head left unsigned: pruning then stops at that checkpoint, if records up to it are still kept.
    const candidate = found !== undefined && pin !== undefined && pin.seq < found.seq ? await keptUpTo(store, pin) : found;
    if (candidate !== undefined && pin !== undefined && pin.seq >= candidate.seq) {
      await store.chainHolds(candidate, pin);
      const withdrawn = [...(found?.withdrawals ?? []), ...(await anchorWithdrawals(store, verified))];
      pruned = await store.prune(await sign(candidate, 'anchor', macsAfter ?? (await store.recordMacsHold(head.seq, head.seq)), withdrawn));
    }
  }
  if (unsigned !== undefined) throw unsigned;
  const signedStart = checkpoint === undefined ? signedMacsAfter : macsAfter;
  return { pruned, ...(checkpoint === undefined ? {} : { checkpoint }), ...(signedStart === undefined ? {} : { macsAfter: signedStart }) };
}

/** The record `signed` names, as a prune candidate, while the store still keeps it or records before it; else undefined (pruned up to it). */
async function keptUpTo(store: AuditStore, signed: ChainHead): Promise<ChainHead | undefined> {
  const [first] = (await store.query({ order: 'asc', limit: 1 })).records;
  return first !== undefined && first.chain.seq <= signed.seq ? { seq: signed.seq, hash: signed.hash } : undefined;
}

/**
 * The withdrawals the anchor the kept records start after names (none at the genesis): the anchor pruning signs next names
 * them too, since that one is deleted with the records it prunes, and the key store may no longer name them. Without one
 * standing there (anchorAt) the round refuses: pruning past it would drop what the broker's named, and an earlier round's
 * anchor put in its row names none since.
 */
async function anchorWithdrawals(store: AuditStore, verified: (checkpoint: Checkpoint) => Promise<VerifiedCheckpoint | undefined>): Promise<KeyWithdrawn[]> {
  const [first] = (await store.query({ order: 'asc', limit: 1 })).records;
  if (first === undefined || first.chain.seq === 1) return [];
  const start = first.chain.seq - 1;
  const anchor = await anchorAt(store, start, first.chain.prev_hash, verified);
  if (anchor === undefined) {
    throw new ChainConflictError(
      `the records start after seq ${start}, but no anchor the broker signed stands there: pruning past it would drop the withdrawals it named`,
    );
  }
  return (anchor.withdrawals ?? []).map(({ kid, time }) => ({ kid, withdrawnAt: Date.parse(time) }));
}

/**
 * Holds the record a checkpoint signed to the hash signed over it. It may be gone only as pruning leaves it: at or before the
 * anchor the kept records start from (or, with none left, the anchor the log ends at), which the keys verify as one pruning
 * signed (or an older keyway's, which named no role), over the same hash where it is at the same seq. Otherwise whoever can
 * write the store deleted it (alone, with the records before it, or with every record), and signing the head would vouch
 * for the break.
 */
async function holdSigned(store: AuditStore, signed: ChainHead, verified: (checkpoint: Checkpoint) => Promise<VerifiedCheckpoint | undefined>): Promise<void> {
  await store.chainHolds(signed, signed);
  const next = async (after: number) => (await store.query({ order: 'asc', limit: 1, after: String(after) })).records[0];
  if (signed.seq > 0 && (await next(signed.seq - 1))?.chain.seq === signed.seq) return;
  const first = await next(0);
  const start = first === undefined ? (await store.head()).seq : first.chain.seq - 1;
  const anchor = signed.seq > start ? undefined : await anchorAt(store, start, first?.chain.prev_hash, verified);
  if (anchor === undefined || (anchor.seq === signed.seq && anchor.hash !== signed.hash)) {
    throw new ChainConflictError(`record ${signed.seq} is gone, and no anchor pruning signed stands for it: it was deleted`);
  }
}

/**
 * The anchor pruning left where the kept records start (after `start`; `prevHash`: what the first of them links to, none
 * when none is kept), as the keys verify it: signed as an anchor (or by an older keyway, which named no role) over that seq
 * and hash, as it signs them, never as the row's columns say. Undefined for a head checkpoint, a forged row, or an anchor the
 * broker signed for another place (an earlier round's) put in that row.
 */
async function anchorAt(
  store: AuditStore,
  start: number,
  prevHash: string | undefined,
  verified: (checkpoint: Checkpoint) => Promise<VerifiedCheckpoint | undefined>,
): Promise<VerifiedCheckpoint | undefined> {
  const [stored] = await store.checkpoints(start - 1, 1);
  const anchor = stored?.seq === start ? await verified(stored) : undefined;
  const placed = anchor !== undefined && anchor.role !== 'head' && anchor.seq === start && (prevHash === undefined || anchor.hash === prevHash);
  return placed ? anchor : undefined;
}

/** The newest stored checkpoint the broker's keys verify, as it signed it: the latest, else the others newest first. */
async function newestVerified(
  store: AuditStore,
  latest: Checkpoint,
  verified: (checkpoint: Checkpoint) => Promise<VerifiedCheckpoint | undefined>,
): Promise<VerifiedCheckpoint | undefined> {
  const first = await verified(latest);
  if (first !== undefined) return first;
  // Rare (the latest signed by a key an older keyway removed unattested, or a forged row): every stored one, newest first.
  const all: Checkpoint[] = [];
  for (let page = await store.checkpoints(0, 500); page.length > 0; page = await store.checkpoints(page.at(-1)?.seq ?? 0, 500)) all.push(...page);
  for (const stored of all.reverse()) {
    const checked = await verified(stored);
    if (checked !== undefined) return checked;
  }
  return undefined;
}
