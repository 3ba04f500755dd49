import { errorText, type Logger } from '../../core/log.ts';

/** setTimeout's ceiling (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;
/**
 * How long after a round that failed (the schedule unreadable or unwritable) the next one waits at the soonest: what it
 * failed on is still due, and starting again at once would ask GitHub and the store in a loop as fast as they answer.
 */
const FAILED_ROUND_PAUSE_MS = 5000;

/**
 * Runs the GitHub token revocations when the earliest one is due. The schedule itself is in
 * SQLite, so after a restart `arm()` finds what is pending (and what fell due while down).
 * Rounds never overlap: a poke during a round arms again after it.
 */
export class RevocationTimer {
  readonly #run: () => Promise<unknown>;
  readonly #next: () => Promise<number | undefined>;
  readonly #now: () => number;
  readonly #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | undefined;
  /** After a failed round: no round before this (the clock's ms). */
  #pausedUntil = Number.NEGATIVE_INFINITY;
  #closed = false;

  constructor(run: () => Promise<unknown>, next: () => Promise<number | undefined>, now: () => number, log: Logger) {
    this.#run = run;
    this.#next = next;
    this.#now = now;
    this.#log = log;
  }

  /** Sets the timer for the earliest pending revocation. */
  arm(): void {
    if (this.#closed || this.#round !== undefined) return;
    void this.#next().then(
      (at) => {
        if (this.#closed || this.#round !== undefined) return;
        clearTimeout(this.#timer);
        if (at === undefined) return;
        const now = this.#now();
        this.#timer = setTimeout(() => void this.runNow(), Math.min(Math.max(0, at - now, this.#pausedUntil - now), MAX_DELAY_MS));
      },
      (error: unknown) => this.#log.error('github token revocation schedule unreadable', { error: String(error) }),
    );
  }

  /** One round now (the timer does this; tests may too), then the timer for the next: FAILED_ROUND_PAUSE_MS on at the soonest if it failed. */
  async runNow(): Promise<void> {
    while (this.#round !== undefined) await this.#round;
    clearTimeout(this.#timer);
    this.#round = this.#run().then(
      () => {
        this.#pausedUntil = Number.NEGATIVE_INFINITY;
      },
      (error: unknown) => {
        this.#pausedUntil = this.#now() + FAILED_ROUND_PAUSE_MS;
        this.#log.error('github token revocation round failed', { error: errorText(error), next_round_in_ms: FAILED_ROUND_PAUSE_MS });
      },
    );
    await this.#round;
    this.#round = undefined;
    this.arm();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#round;
  }
}
