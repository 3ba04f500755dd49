/** Counts of refused exchanges per client address, for `denial_burst_address`. */
export interface RefusalCounter {
  /** Counts a refusal from `address` at `time`; returns how many were counted from it since `windowStart`, this one included. */
  count(address: string, time: number, windowStart: number): number | Promise<number>;
}

/**
 * Refusal counts in memory, per address and second, each dropped once older than the window. Only
 * what the alert rules run on is counted: a refusal they do not see (a holder's `/revoke` of a bad
 * token, a `/proxy` refusal) would carry the count past the threshold without a rule seeing it
 * reached. A restart counts afresh.
 */
export class RefusalCounts implements RefusalCounter {
  readonly #byAddress = new Map<string, Map<number, number>>();
  /** The seconds counted, in the order first counted, each with its addresses: the stale ones are at the front. */
  readonly #bySecond = new Map<number, Set<string>>();

  /** How many addresses have counts held: what this costs in memory. */
  get addresses(): number {
    return this.#byAddress.size;
  }

  count(address: string, time: number, windowStart: number): number {
    const from = Math.floor(windowStart / 1000);
    for (const [second, addresses] of this.#bySecond) {
      if (second >= from) break;
      for (const stale of addresses) {
        const seconds = this.#byAddress.get(stale);
        seconds?.delete(second);
        if (seconds?.size === 0) this.#byAddress.delete(stale);
      }
      this.#bySecond.delete(second);
    }
    const at = Math.floor(time / 1000);
    const seconds = this.#byAddress.get(address) ?? new Map<number, number>();
    this.#byAddress.set(address, seconds.set(at, (seconds.get(at) ?? 0) + 1));
    this.#bySecond.set(at, (this.#bySecond.get(at) ?? new Set()).add(address));
    let counted = 0;
    for (const [second, n] of seconds) if (second >= from) counted += n;
    return counted;
  }
}
