import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import * as v from 'valibot';
import { sha256Hex } from '../mint/sha256-hex.ts';
import type { ChainHead } from './checkpoint.ts';
import type { AuditStatementSigner } from './sign-checkpoint.ts';
import { CheckpointError } from './verify-checkpoint.ts';

/**
 * A signed statement "the log's chains end here": every shard's head (and the sealed legacy
 * chain's), signed together on the Cron schedule. Holding each shard to the root checkpoints shows
 * that none was rewritten, cut short, or left out since: a chain the root names must pass through
 * the head it signed.
 */
export interface RootCheckpoint {
  /** ISO 8601, when it was signed (the JWS `iat`). */
  readonly time: string;
  /** Every chain's head, by the chain's name (`legacy`, `0`, `1`, …). */
  readonly heads: Readonly<Record<string, ChainHead>>;
  /**
   * Where MACs start in each chain whose upkeep signed one (the `macs_after` of its newest checkpoint, record-mac.ts), by
   * name: whoever can write a shard cannot strip its MACs and move its start up past them by deleting its checkpoints.
   * Absent from a root signed before keyway signed it there, and for a chain no upkeep round signs (the sealed legacy one).
   */
  readonly macs_after?: Readonly<Record<string, number>>;
  /** Compact JWS (ES256, `typ: keyway-root-checkpoint+jwt`) over `{iss, iat, heads, macs_after}`. */
  readonly jws: string;
}

export const ROOT_CHECKPOINT_TYPE = 'keyway-root-checkpoint+jwt';

/** Where a root checkpoint sits in the list, oldest first: its time, then its JWS's hash (two may be signed in one second). */
export function rootCheckpointPosition(root: RootCheckpoint): string {
  return `${rootCheckpointsFrom(Date.parse(root.time))}-${sha256Hex(root.jws).slice(0, 16)}`;
}

/** Where the root checkpoints signed at `time` (milliseconds) or later begin: every position of an earlier one sorts before it. */
export function rootCheckpointsFrom(time: number): string {
  return String(time).padStart(15, '0');
}

export const ROOT_CHECKPOINT_POSITION = /^\d{15}-[0-9a-f]{16}$/;

/** `macsAfter` beside the heads, not in them: a keyway that reads each head as exactly {seq, hash} still verifies the root. */
export async function signRootCheckpoint(
  sign: AuditStatementSigner,
  heads: Readonly<Record<string, ChainHead>>,
  macsAfter: Readonly<Record<string, number>> = {},
): Promise<RootCheckpoint> {
  const signed = Object.keys(macsAfter).length === 0 ? {} : { macs_after: macsAfter };
  const { jws, iat } = await sign({ heads, ...signed }, ROOT_CHECKPOINT_TYPE);
  return { time: new Date(iat * 1000).toISOString(), heads, ...signed, jws };
}

const ChainName = v.pipe(v.string(), v.regex(/^(legacy|\d{1,3})$/));
const Seq = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const Heads = v.record(ChainName, v.strictObject({ seq: Seq, hash: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) }));
const MacsAfter = v.optional(v.record(ChainName, Seq));

/**
 * Verifies a root checkpoint's JWS with the broker's keys and returns what it signs (never the text stored beside it). Its
 * `iss`, as a checkpoint's, is whatever KEYWAY_ISSUER was when it was signed: the keys decide (verify-checkpoint.ts).
 */
export async function verifyRootCheckpoint(jws: string, keys: JWTVerifyGetKey): Promise<RootCheckpoint> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jws, keys, { typ: ROOT_CHECKPOINT_TYPE, algorithms: ['ES256'], requiredClaims: ['iss', 'iat'] }));
  } catch (error) {
    throw new CheckpointError(`the root checkpoint signature does not verify: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const heads = v.safeParse(Heads, payload['heads']);
  if (!heads.success || typeof payload['iat'] !== 'number') throw new CheckpointError('the root checkpoint payload is not {heads, iat}');
  const macsAfter = v.safeParse(MacsAfter, payload['macs_after']);
  if (!macsAfter.success || Object.keys(macsAfter.output ?? {}).some((name) => heads.output[name] === undefined))
    throw new CheckpointError('the root checkpoint macs_after is not a seq by chain, of chains its heads name');
  const signed = macsAfter.output === undefined ? {} : { macs_after: macsAfter.output };
  return { time: new Date(payload['iat'] * 1000).toISOString(), heads: heads.output, ...signed, jws };
}
