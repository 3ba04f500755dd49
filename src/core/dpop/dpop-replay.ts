import { KeywayError } from '../errors/keyway-error.ts';

/**
 * Where a resource server remembers the DPoP proofs it accepted, so each is good once (RFC 9449
 * §11.1). `claim` answers true for the first claim of a key and false for every later one until
 * `expiresAt`; a store shared by several instances of a service must make that atomic across them.
 */
export interface DpopReplayStore {
  /** `expiresAt`: seconds since the epoch; `now`: milliseconds since the epoch. */
  claim(key: string, expiresAt: number, now: number): Promise<boolean>;
}

/**
 * The store could not say whether a proof was used before (a shared store that is down): the
 * request is neither admitted nor refused as replayed, and is worth retrying (503).
 */
export class DpopReplayUnavailableError extends KeywayError {
  override readonly name = 'DpopReplayUnavailableError';
  readonly code = 'dpop_replay_unavailable';
}

/** How many remembered proofs trigger a sweep of the expired ones. */
const SWEEP_AT = 10_000;

/**
 * The default store: this process's memory. Right for one instance; a service behind a load
 * balancer passes a shared store instead, or a proof replayed to another instance is accepted there.
 */
export class MemoryDpopReplayStore implements DpopReplayStore {
  readonly #seen = new Map<string, number>();
  #sweepAt = SWEEP_AT;

  async claim(key: string, expiresAt: number, now: number): Promise<boolean> {
    const seconds = now / 1000;
    if (this.#seen.size >= this.#sweepAt) {
      for (const [seenKey, until] of this.#seen) if (until < seconds) this.#seen.delete(seenKey);
      this.#sweepAt = Math.max(SWEEP_AT, this.#seen.size * 2);
    }
    const until = this.#seen.get(key);
    if (until !== undefined && until >= seconds) return false;
    this.#seen.set(key, expiresAt);
    return true;
  }
}
