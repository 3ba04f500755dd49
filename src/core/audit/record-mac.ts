import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { base64url } from 'jose';
import { masterKeyId, type MasterKeys } from '../secrets/master-keys.ts';
import type { ChainHead } from './checkpoint.ts';

/** A key records are MACed under: derived from the master key `kid` names (HKDF, purpose `audit-record`). */
export interface RecordMacKey {
  readonly kid: string;
  readonly key: Uint8Array;
}

/**
 * Why a record is not one the broker appended, by its MAC: it carries none after where MACs start (`mac_missing`), one
 * under a master key not configured (`mac_key_unknown`: another key, or a made-up id), or one that master key did not
 * make for this record at this seq in this chain (`mac_invalid`).
 */
export interface RecordMacProblem {
  readonly kind: 'mac_missing' | 'mac_key_unknown' | 'mac_invalid';
  readonly why: string;
}

/**
 * The lowest of the starts of MACs signed for one chain (a checkpoint's, a root checkpoint's), none when none is: upkeep
 * only ever signs a start at or before the one it was held to (RecordMacs.inOrder), so the lowest is the newest honest one.
 */
export function lowestMacsStart(starts: Iterable<number | undefined>): number | undefined {
  let lowest: number | undefined;
  for (const start of starts) if (start !== undefined && (lowest === undefined || start < lowest)) lowest = start;
  return lowest;
}

/** RecordMacs.inOrder: records checked one after the other, and where MACs start as they showed it. */
export interface RecordMacCheck {
  problem(link: ChainHead, mac: string | null): RecordMacProblem | undefined;
  /** Where MACs start, held to the records checked up to `toSeq`. */
  macsAfter(toSeq: number): number;
}

/**
 * The records of a chain after its newest checkpoint that carry no MAC, `first_seq` to `last_seq`, taken as written before
 * keyway made MACs (at or before where MACs start): nothing vouches for them. What a restore reports of them.
 */
export interface RecordsWithoutMac {
  readonly chain: string;
  readonly first_seq: number;
  readonly last_seq: number;
}

/** HMAC-SHA-256 of UTF-8 text, synchronously (inside the append's transaction): Node's writer passes its native one. */
export type HmacSha256 = (key: Uint8Array, text: string) => Uint8Array;

const portableHmac: HmacSha256 = (key, text) => hmac(sha256, key, utf8ToBytes(text));
const INFO = utf8ToBytes('keyway audit record mac');

/**
 * The record MAC keys of `master`, the current one first: HKDF-SHA-256 of each master key with a label of their own, so
 * a record's MAC is no attestation, no sealed secret's key and no other master key's. Whoever holds one can MAC records
 * but opens no sealed secret: it is what the Node writer thread is given, never the master key.
 */
export function recordMacKeys(master: MasterKeys): RecordMacKey[] {
  return [master.current, ...master.previous].map((raw) => ({ kid: masterKeyId(raw), key: hkdf(sha256, raw, new Uint8Array(), INFO, 32) }));
}

/**
 * The MAC each record is written with, which only the master key's holder can make: HMAC-SHA-256 over the name of its
 * chain, its `seq` and its chain hash (which commits to its event and, through `prev_hash`, to every record before), as
 * `<master key id>.<mac>`. The hash chain needs no key, so without it a record appended to the tail of the store by
 * whoever can write it (a stopped broker's file, a backup or export restored) would be signed by the next checkpoint as
 * the broker's own; without the chain's name, one shard's records put in place of another's would hold there.
 */
export class RecordMacs {
  readonly #keys: readonly RecordMacKey[];
  readonly #chain: string;
  readonly #hmac: HmacSha256;

  /**
   * `keys`: the current one first (it makes the MACs), then previous ones, whose MACs still verify. `chain`: the chain's
   * name as its checkpoints sign it (a Workers shard, `0`, `1`, …, or `legacy`), none in a log of one chain (Node).
   */
  constructor(keys: readonly RecordMacKey[], options: { readonly chain?: string; readonly hmac?: HmacSha256 } = {}) {
    if (keys.length === 0) throw new TypeError('record MACs need a key');
    this.#keys = keys;
    this.#chain = options.chain ?? '';
    this.#hmac = options.hmac ?? portableHmac;
  }

  make(link: ChainHead): string {
    const [current] = this.#keys as [RecordMacKey];
    return `${current.kid}.${this.#mac(current, link)}`;
  }

  /**
   * Why the record at `link`, stored with `mac`, is not one the broker appended; undefined when it is. A record without a
   * MAC is the broker's only at or before `macsAfter`: written before keyway made them (the migration that added them
   * remembers where the log ended).
   */
  problem(link: ChainHead, mac: string | null, macsAfter: number): RecordMacProblem | undefined {
    if (mac === null) {
      if (link.seq <= macsAfter) return undefined;
      return { kind: 'mac_missing', why: `carries no MAC, though the broker has MACed every record after ${macsAfter}: the broker did not append it` };
    }
    const [kid = '', value, ...rest] = mac.split('.');
    const key = this.#keys.find((candidate) => candidate.kid === kid);
    if (key === undefined || rest.length > 0) {
      const why = `carries a MAC under master key ${JSON.stringify(kid)}, which is not configured (KEYWAY_MASTER_KEY, KEYWAY_MASTER_KEY_PREVIOUS)`;
      return { kind: 'mac_key_unknown', why };
    }
    if (value === this.#mac(key, link)) return undefined;
    return { kind: 'mac_invalid', why: 'carries a MAC the master key did not make: the broker did not append it' };
  }

  /**
   * A check of records read in seq order from `macsAfter` on: the broker MACs every record it appends once it makes MACs
   * at all, so a record carrying its MAC moves the start before it. A start the store remembers (the migration's, which
   * whoever writes the store can raise, and which counts until a checkpoint signs one) then lets no record without a MAC
   * after one with it through, and is never signed past the records it was held to.
   */
  inOrder(macsAfter: number): RecordMacCheck {
    let start = macsAfter;
    return {
      problem: (link, mac) => {
        const problem = this.problem(link, mac, start);
        if (problem === undefined && mac !== null) start = Math.min(start, link.seq - 1);
        return problem;
      },
      macsAfter: (toSeq) => Math.min(start, toSeq),
    };
  }

  // CHAIN "\n" SEQ "." HASH: neither SEQ nor HASH holds a line break, so the last one ends the name, whatever it is.
  #mac(key: RecordMacKey, link: ChainHead): string {
    return base64url.encode(this.#hmac(key.key, `${this.#chain}\n${link.seq}.${link.hash}`));
  }
}
