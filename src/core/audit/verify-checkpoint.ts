import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import { CHECKPOINT_TYPE, type Checkpoint, type CheckpointRole } from './checkpoint.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export class CheckpointError extends KeywayError {
  override readonly name = 'CheckpointError';
  readonly code = 'checkpoint_invalid';
}

/** A checkpoint as its signature vouches for it; `role` undefined: signed before keyway named roles (all alike, pruning anchors too). */
export interface VerifiedCheckpoint extends Checkpoint {
  readonly role: CheckpointRole | undefined;
  /** The chain it names; undefined when it names none (a log of one chain, or signed before keyway named chains). */
  readonly chain: string | undefined;
  /** After which seq every record carries the broker's MAC (record-mac.ts); undefined when signed before keyway MACed records. */
  readonly macsAfter?: number;
  /** An anchor's: the keys withdrawn when it was signed, and when (ISO 8601), for the withdrawals whose records it pruned. */
  readonly withdrawals?: readonly { readonly kid: string; readonly time: string }[];
}

/**
 * Verifies a checkpoint's JWS with the broker's keys and returns what it signs. The stored
 * `seq`, `hash` and `time` beside it count for nothing: only the signed payload does. Its `iss` is
 * the issuer the broker signed as then, which KEYWAY_ISSUER may have changed since: the keys say
 * whose it is, not the name. `chain`: the chain of a log of several it is read as part of; one
 * signed for another chain is invalid there, one signed before keyway named chains (none named) is
 * accepted (docs/audit/hash-chain.md).
 */
export async function verifyCheckpoint(jws: string, keys: JWTVerifyGetKey, chain?: string): Promise<VerifiedCheckpoint> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jws, keys, { typ: CHECKPOINT_TYPE, algorithms: ['ES256'], requiredClaims: ['iss', 'iat'] }));
  } catch (error) {
    throw new CheckpointError(`the checkpoint signature does not verify: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const { seq, hash, iat, role, chain: named, macs_after: macsAfter, withdrawn_keys: withdrawn } = payload;
  if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash) || typeof iat !== 'number') {
    throw new CheckpointError('the checkpoint payload is not {seq, hash, iat}');
  }
  if (role !== undefined && role !== 'head' && role !== 'anchor') throw new CheckpointError('the checkpoint role is neither head nor anchor');
  if (named !== undefined && typeof named !== 'string') throw new CheckpointError('the checkpoint chain is not a name');
  if (macsAfter !== undefined && (!Number.isSafeInteger(macsAfter) || (macsAfter as number) < 0))
    throw new CheckpointError('the checkpoint macs_after is not a seq');
  if (chain !== undefined && named !== undefined && named !== chain)
    throw new CheckpointError(`the checkpoint is signed for chain ${named}, but this is chain ${chain}`);
  const withdrawals = withdrawn === undefined ? undefined : withdrawalsOf(withdrawn);
  return {
    seq: seq as number,
    hash,
    time: new Date(iat * 1000).toISOString(),
    jws,
    role,
    chain: named,
    ...(macsAfter === undefined ? {} : { macsAfter: macsAfter as number }),
    ...(withdrawals === undefined ? {} : { withdrawals }),
  };
}

/** An anchor's `withdrawn_keys`: each a kid and the time it was withdrawn. */
function withdrawalsOf(claim: unknown): readonly { readonly kid: string; readonly time: string }[] {
  const entries = Array.isArray(claim) ? (claim as unknown[]) : [];
  const withdrawals = entries.flatMap((entry) => {
    const { kid, withdrawn_at: time } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    return typeof kid === 'string' && typeof time === 'string' && !Number.isNaN(Date.parse(time)) ? [{ kid, time }] : [];
  });
  if (!Array.isArray(claim) || withdrawals.length !== entries.length)
    throw new CheckpointError('the checkpoint withdrawn_keys is not a list of {kid, withdrawn_at}');
  return withdrawals;
}

/**
 * The newest of `checkpoints` that verifies with `keys` (in chain `chain`, in a log of several), or undefined: the records
 * after it are vouched for by nothing but their MACs (record-mac.ts).
 */
export async function newestValidCheckpoint(
  checkpoints: readonly Checkpoint[],
  keys: JWTVerifyGetKey,
  chain?: string,
): Promise<VerifiedCheckpoint | undefined> {
  for (const stored of [...checkpoints].sort((a, b) => b.seq - a.seq)) {
    try {
      return await verifyCheckpoint(stored.jws, keys, chain);
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
    }
  }
  return undefined;
}
