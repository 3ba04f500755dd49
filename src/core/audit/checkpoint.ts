/** The end of the chain: a record's `seq` and `hash`. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * What the broker signed a checkpoint as (its `role` claim): the log's `head` in an upkeep round,
 * or the `anchor` pruning leaves on the last record it deletes. Only an anchor stands for the
 * records before a log's first: a head checkpoint there means records were deleted.
 */
export type CheckpointRole = 'head' | 'anchor';

/**
 * A signed statement "the log's record `seq` has hash `hash`", made by the broker with its
 * signing key at `time`. Whoever keeps checkpoints can later prove that no record up to `seq`
 * was edited, deleted or re-ordered since; the anchor at the oldest kept record's predecessor
 * anchors the chain after pruning.
 */
export interface Checkpoint extends ChainHead {
  /** ISO 8601, when it was signed (whole seconds: the JWS `iat`). */
  readonly time: string;
  /**
   * Compact JWS (ES256, `typ: keyway-checkpoint+jwt`) over `{iss, iat, seq, hash, role, chain}`: `chain` names the chain of a
   * log of several (a Workers shard, `0`, `1`, …, or `legacy`), so that one chain's checkpoint is none of another's; a log of
   * one chain (Node) names none.
   */
  readonly jws: string;
}

export const CHECKPOINT_TYPE = 'keyway-checkpoint+jwt';
