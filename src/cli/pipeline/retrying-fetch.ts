/** How hard the pipeline side tries before it gives up on a broker or a CI token service. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Each try gets this long; a try that takes longer counts as a network error. */
  readonly attemptTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 4, baseDelayMs: 500, maxDelayMs: 5000, attemptTimeoutMs: 10_000 };

export interface RetryNotice {
  readonly method: string;
  readonly url: string;
  /** The try that failed, from 1. */
  readonly attempt: number;
  readonly attempts: number;
  readonly reason: string;
  readonly delayMs: number;
}

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * The delay before try `attempt + 1`: exponential, capped, with equal jitter (half fixed, half
 * random) so that many jobs retrying one broker spread out. A `Retry-After` in seconds is
 * honoured up to the cap.
 */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, retryAfter: string | null, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  const asked = retryAfter !== null && /^\d+$/.test(retryAfter) ? Math.min(Number(retryAfter) * 1000, policy.maxDelayMs) : 0;
  return Math.round(Math.max(jittered, asked));
}

/**
 * `fetch` that retries network errors and 5xx answers, never 4xx: a 4xx is an answer (a
 * refusal, a missing permission), and asking again would only repeat it. After the last try
 * the last 5xx response is returned as it is, so the caller still reads its error body.
 * Requests are replayed as given, so bodies must be replayable (strings, URLSearchParams).
 */
export function retryingFetch(policy: RetryPolicy, onRetry: (notice: RetryNotice) => void, fetchImpl: FetchLike = fetch): FetchLike {
  return async (url, init = {}) => {
    const method = init.method ?? 'GET';
    for (let attempt = 1; ; attempt += 1) {
      const last = attempt >= policy.attempts;
      let reason: string;
      let retryAfter: string | null = null;
      try {
        const signals = [AbortSignal.timeout(policy.attemptTimeoutMs), ...(init.signal ? [init.signal] : [])];
        const response = await fetchImpl(url, { ...init, signal: AbortSignal.any(signals) });
        if (response.status < 500 || last) return response;
        reason = `answered ${response.status}`;
        retryAfter = response.headers.get('retry-after');
        await response.body?.cancel();
      } catch (error) {
        if (last || init.signal?.aborted === true) throw error;
        reason = describeNetworkError(error);
      }
      const delayMs = backoffDelayMs(policy, attempt, retryAfter);
      onRetry({ method, url, attempt, attempts: policy.attempts, reason, delayMs });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  };
}

/** fetch's own message is "fetch failed"; the useful part (ECONNREFUSED, a reset) is in its cause. */
export function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (error.name === 'TimeoutError') return 'timed out';
  if (cause !== undefined && typeof cause.code === 'string') return `${error.message} (${cause.code})`;
  if (cause !== undefined && typeof cause.message === 'string') return `${error.message} (${cause.message})`;
  return error.message;
}
