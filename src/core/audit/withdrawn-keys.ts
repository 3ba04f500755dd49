import { decodeJwt, decodeProtectedHeader } from 'jose';
import { KEY_RING_SERVED_MS } from '../mint/key-life-cycle.ts';
import type { AuditRecord, ChainLink } from './audit-event.ts';

/** A signing key's withdrawal as the chain records it (`signing_key_withdrawn`): the key, and the record's seq and time. */
export interface KeyWithdrawal {
  readonly kid: string;
  readonly seq: number;
  /** ISO 8601: when the record was written, just after the key was withdrawn. */
  readonly time: string;
  /** The chain that holds the record, in a log of several (verify-shards.ts). */
  readonly shard?: string;
  /**
   * Known from the anchor at `seq` alone, which names the keys withdrawn when it was signed: the record was pruned at or
   * before it, or never written.
   */
  readonly pruned?: true;
  /**
   * A recorded withdrawal an anchor at this seq names earlier than its record does: `time` is the anchor's, `recorded` the
   * record's (which whoever can write the store may have appended past the last checkpoint).
   */
  readonly anchor?: number;
  readonly recorded?: string;
}

/**
 * A statement signed with a signing key, its signature verified: a checkpoint (`seq`: the record it signs) or a root
 * checkpoint (`seq`: the head it signs for the chain of the withdrawals it is held to). When it was signed is read from
 * its signed `iat`, never from a time stored beside it.
 */
export interface SignedStatement {
  readonly jws: string;
  readonly seq?: number;
}

/** What signed after a withdrawal says: the statement, its key, when it says it was signed, and why it cannot be the broker's. */
export interface WithdrawnKeyUse {
  readonly statement: SignedStatement;
  readonly kid: string;
  readonly time: string;
  readonly why: string;
}

// The details withdrawSigningKey wrote before it named the key in `signing_key` (hashed with the record), still read in
// records without it: a key it withdrew, or one withdrawn already, and when. A withdrawal whose record could not be written
// is recorded when it is asked again, as withdrawn already.
const WITHDREW = /^withdrew signing key (\S+) \(/;
const WITHDRAWN_ALREADY = /^signing key (\S+) \(\w+\) was withdrawn already at (\S+):/;

/** The withdrawal `record` says was made, or undefined when it says none (another reason, a key removed, not withdrawn). */
export function keyWithdrawal(record: Pick<AuditRecord, 'event'> & { readonly chain: Pick<ChainLink, 'seq'> }): KeyWithdrawal | undefined {
  const { event, chain } = record;
  if (event.reason !== 'signing_key_withdrawn') return undefined;
  // The store's time of the withdrawal, never later than the record's own: a record asked again names the time the store
  // holds, which whoever can write the store may have moved on (to let a thief sign with the key until then).
  const at = (kid: string, time: string): KeyWithdrawal => ({ kid, seq: chain.seq, time: Date.parse(time) > Date.parse(event.time) ? event.time : time });
  const key = event.signing_key;
  if (key !== undefined) {
    const time = key.withdrawn_at;
    // None: a key upkeep removed, not withdrawn. One that is no time (keyway writes none) counts from the record's own.
    if (time === undefined) return undefined;
    return at(key.kid, Number.isNaN(Date.parse(time)) ? event.time : time);
  }
  const detail = event.detail ?? '';
  const withdrew = WITHDREW.exec(detail);
  if (withdrew?.[1] !== undefined) return at(withdrew[1], event.time);
  const already = WITHDRAWN_ALREADY.exec(detail);
  if (already?.[1] === undefined || already[2] === undefined) return undefined;
  return at(already[1], Number.isNaN(Date.parse(already[2])) ? event.time : already[2]);
}

/**
 * The first of `statements` (signatures verified) signed with a key after its withdrawal, as the chain recorded it. A broker
 * process whose key ring was loaded before the withdrawal may still sign with the key until it reloads the ring, at most
 * KEY_RING_SERVED_MS later. So a statement is refused when it is dated past that allowance, or, in the chain of the
 * withdrawal (`sameChain`), when it signs the withdrawal's record or a later one but is dated more than the same allowance
 * before it: whoever holds the leaked key can sign, and date a signature as they please. The allowance before is no gift to
 * a thief, who may date anything within the one after; without it a Workers Cron round, which dates what it signs at its
 * scheduled time and reads the heads after, would be refused for a withdrawal that landed while it ran.
 */
export function withdrawnKeyUse(
  statements: readonly SignedStatement[],
  withdrawals: readonly KeyWithdrawal[],
  sameChain: boolean,
): WithdrawnKeyUse | undefined {
  if (withdrawals.length === 0) return undefined;
  const withdrawn = new Map<string, KeyWithdrawal>();
  for (const withdrawal of withdrawals) if (!withdrawn.has(withdrawal.kid)) withdrawn.set(withdrawal.kid, withdrawal);
  const uses = statements.flatMap((statement): WithdrawnKeyUse[] => {
    const kid = signingKid(statement.jws);
    const withdrawal = kid === undefined ? undefined : withdrawn.get(kid);
    const signed = signedAt(statement.jws);
    if (kid === undefined || withdrawal === undefined || signed === undefined) return [];
    const time = new Date(signed).toISOString();
    const at = Date.parse(withdrawal.time);
    const shard = withdrawal.shard === undefined ? '' : `shard ${withdrawal.shard} `;
    const record = withdrawal.pruned
      ? `${withdrawal.time}, named by the ${shard}anchor at seq ${withdrawal.seq}`
      : withdrawal.anchor !== undefined
        ? `${shard}record ${withdrawal.seq} says ${withdrawal.recorded}; the ${shard}anchor at seq ${withdrawal.anchor} names ${withdrawal.time}, which counts`
        : `${shard}record ${withdrawal.seq}, ${withdrawal.time}`;
    if (signed > at + KEY_RING_SERVED_MS)
      return [
        { statement, kid, time, why: `after that key was withdrawn (${record}), past the ${KEY_RING_SERVED_MS / 1000} s a broker may still sign with it` },
      ];
    // The signed time is whole seconds: the withdrawal's second counts as before it. Which record a withdrawal known from an
    // anchor alone is, is not known: what it signs cannot be held to being after it.
    if (sameChain && !withdrawal.pruned && statement.seq !== undefined && statement.seq >= withdrawal.seq && signed < at - (at % 1000) - KEY_RING_SERVED_MS)
      return [
        {
          statement,
          kid,
          time,
          why: `though it signs the record of that key's withdrawal (${record}) or a later one: it is backdated, more than ${KEY_RING_SERVED_MS / 1000} s before it`,
        },
      ];
    return [];
  });
  return uses.sort((a, b) => (a.statement.seq ?? 0) - (b.statement.seq ?? 0))[0];
}

/** When a JWS says it was signed (its `iat`, in ms); undefined when it says nothing or is no JWT. */
function signedAt(jws: string): number | undefined {
  try {
    const { iat } = decodeJwt(jws);
    return typeof iat === 'number' ? iat * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The `kid` a JWS header names; undefined when it names none or is no JWS. */
export function signingKid(jws: string): string | undefined {
  try {
    return decodeProtectedHeader(jws).kid;
  } catch {
    return undefined;
  }
}
