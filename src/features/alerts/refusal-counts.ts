import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * Counts of refused exchanges per key (a client network, an identity: refusalKey), for the burst rules. Only what the
 * rules run on is counted: a refusal they do not see (a `/revoke` of a forged token naming the identity, a `/proxy`
 * refusal) would carry the count past the threshold, which a burst fires on reaching, without a rule seeing it reached.
 */
export interface RefusalCounter {
  /** Counts a refusal of `key` at `time`; returns how many were counted of it since `windowStart`, this one included. */
  count(key: string, time: number, windowStart: number): number | Promise<number>;
}

/**
 * The key refusals are counted by: a client network as the per-client rate limit counts it (clientNetwork: an IPv4 address,
 * an IPv6 /64; `denial_burst_address`), an identity, verified (with its account: recordedCaller) or claimed
 * (`denial_burst_identity`). A claimed identity is a stranger's choice, up to some 500 characters: it is held as 128
 * bits of its SHA-256.
 */
export const refusalKey = {
  address: (client: string): string => `address ${client}`,
  identity: (issuer: string | undefined, subject: string, account?: string): string =>
    `identity ${bytesToHex(sha256(utf8ToBytes(JSON.stringify(account === undefined ? [issuer ?? null, subject] : [issuer ?? null, account, subject])))).slice(0, 32)}`,
};

/** Keys RefusalCounts holds at most: some 25 MB. */
export const MAX_REFUSAL_KEYS = 100_000;

/**
 * Refusal counts in memory, per key and second, each dropped once older than the window. A restart counts afresh. At
 * most `maxKeys` keys are held: a key new while that many are takes the place of the one counted least lately. A flood
 * of distinct claimed identities (they cost a stranger nothing) thus never stops a key from being counted; to push one
 * key out between two of its refusals takes `maxKeys` refusals of other keys in between.
 */
export class RefusalCounts implements RefusalCounter {
  readonly #maxKeys: number;
  /** Each key's counts by second, the key counted least lately first. */
  readonly #byKey = new Map<string, Map<number, number>>();
  /** The seconds counted, in the order first counted, each with its keys: the stale ones are at the front. */
  readonly #bySecond = new Map<number, Set<string>>();
  /**
   * Walks the keys from the front with one iterator kept from call to call: a Map keeps deleted entries as holes until
   * it is rebuilt, and a new iterator each time would step over every hole at the front (O(n) a call under a flood).
   */
  #front: Iterator<[string, Map<number, number>]> | undefined;

  constructor(maxKeys = MAX_REFUSAL_KEYS) {
    this.#maxKeys = maxKeys;
  }

  /** How many keys have counts held: what this costs in memory. */
  get keys(): number {
    return this.#byKey.size;
  }

  count(key: string, time: number, windowStart: number): number {
    const from = Math.floor(windowStart / 1000);
    for (const [second, keys] of this.#bySecond) {
      if (second >= from) break;
      for (const stale of keys) {
        const seconds = this.#byKey.get(stale);
        seconds?.delete(second);
        if (seconds?.size === 0) this.#byKey.delete(stale);
      }
      this.#bySecond.delete(second);
    }
    const at = Math.floor(time / 1000);
    const seconds = this.#byKey.get(key) ?? new Map<number, number>();
    // Counted now: to the back of the order.
    this.#byKey.delete(key);
    if (this.#byKey.size >= this.#maxKeys) this.#forgetLeastLately();
    this.#byKey.set(key, seconds.set(at, (seconds.get(at) ?? 0) + 1));
    this.#bySecond.set(at, (this.#bySecond.get(at) ?? new Set()).add(key));
    let counted = 0;
    for (const [second, n] of seconds) if (second >= from) counted += n;
    return counted;
  }

  #forgetLeastLately(): void {
    let next = this.#front?.next();
    if (next === undefined || next.done === true) {
      this.#front = this.#byKey.entries();
      next = this.#front.next();
    }
    if (next.done === true) return;
    const [key, seconds] = next.value;
    this.#byKey.delete(key);
    for (const second of seconds.keys()) this.#bySecond.get(second)?.delete(key);
  }
}
