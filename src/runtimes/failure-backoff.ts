/**
 * How often something that keeps failing under traffic is tried again: after a failure, not until a wait has passed,
 * 1 s after the first failure, doubling with each failure in a row, at most a minute. Meanwhile each request is told
 * how long is left instead of trying it again itself.
 */
export class FailureBackoff {
  static readonly FIRST_MS = 1000;
  static readonly MAX_MS = 60_000;
  #failures = 0;
  #failedAt = Number.NEGATIVE_INFINITY;
  #retryAt = 0;

  /**
   * Makes the try `attempt` for a request that arrived at `startedAt`, unless a wait is due: its value once it succeeded;
   * else the ms left to wait, `report` having heard of a failure it counted (once for the tries begun together).
   */
  async attempt<T>(
    startedAt: number,
    now: () => number,
    attempt: () => Promise<T>,
    report: (error: unknown, failure: { readonly failures: number; readonly waitMs: number }) => void,
  ): Promise<{ readonly value: T } | { readonly waitMs: number }> {
    if (this.#waitMs(startedAt) > 0) return { waitMs: this.#waitMs(startedAt) };
    let value: T;
    try {
      value = await attempt();
    } catch (error) {
      const failure = this.#failed(startedAt, now());
      if (failure !== undefined) report(error, failure);
      return { waitMs: this.#waitMs(now()) };
    }
    this.#failures = 0;
    this.#retryAt = 0;
    return { value };
  }

  /** The ms left before the next try may be made at `now`; 0 once it may. */
  #waitMs(now: number): number {
    return Math.max(0, this.#retryAt - now);
  }

  /**
   * A try begun at `startedAt` failed at `now`: the failures in a row and the wait this one sets; or undefined when it
   * began no later than the failure counted last, that is together with it (concurrent requests), and is not counted again.
   */
  #failed(startedAt: number, now: number): { readonly failures: number; readonly waitMs: number } | undefined {
    if (startedAt <= this.#failedAt) return undefined;
    this.#failures += 1;
    const waitMs = Math.min(FailureBackoff.FIRST_MS * 2 ** (this.#failures - 1), FailureBackoff.MAX_MS);
    this.#failedAt = now;
    this.#retryAt = now + waitMs;
    return { failures: this.#failures, waitMs };
  }
}

/** The Retry-After value (whole seconds, at least 1) for a wait of `waitMs`. */
export function retryAfter(waitMs: number): string {
  return String(Math.max(1, Math.ceil(waitMs / 1000)));
}
