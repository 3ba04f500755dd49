import { errorText, type Logger } from '../../core/log.ts';

/** setTimeout's ceiling (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

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
        this.#timer = setTimeout(() => void this.runNow(), Math.min(Math.max(0, at - this.#now()), MAX_DELAY_MS));
      },
      (error: unknown) => this.#log.error('github token revocation schedule unreadable', { error: String(error) }),
    );
  }

  /** One round now (the timer does this; tests may too), then the timer for the next. */
  async runNow(): Promise<void> {
    while (this.#round !== undefined) await this.#round;
    clearTimeout(this.#timer);
    this.#round = this.#run().then(
      () => undefined,
      (error: unknown) => this.#log.error('github token revocation round failed', { error: errorText(error) }),
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
