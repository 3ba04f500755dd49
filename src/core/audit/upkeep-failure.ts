import { ChainConflictError } from './chain-conflict-error.ts';
import { CheckpointsRolledBackError } from './maintain-audit-log.ts';

/**
 * Why a round of audit log upkeep did not finish, as a class: what /metrics counts and /v1/health names. The error's own
 * text (a seq, a kid, a path) is only in the log line, so that the metric's label values stay a fixed few.
 * - `signing_keys_unavailable`: the key ring could not be reloaded, so the round signed and pruned nothing;
 * - `chain_conflict`: the records or checkpoints do not hold (ChainConflictError), so the round refused to sign or prune past them;
 * - `checkpoints_rolled_back`: checkpoints this process signed were deleted from the store (CheckpointsRolledBackError);
 * - `error`: anything else (a lock held past the busy timeout, a full disk).
 */
export const UPKEEP_FAILURES = ['signing_keys_unavailable', 'chain_conflict', 'checkpoints_rolled_back', 'error'] as const;

export type UpkeepFailure = (typeof UPKEEP_FAILURES)[number];

/** The class of what a round of upkeep threw. */
export function upkeepFailureOf(error: unknown): UpkeepFailure {
  if (error instanceof ChainConflictError) return 'chain_conflict';
  if (error instanceof CheckpointsRolledBackError) return 'checkpoints_rolled_back';
  return 'error';
}
