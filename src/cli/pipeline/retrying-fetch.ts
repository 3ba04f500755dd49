import { KeywayError } from '../../core/errors/keyway-error.ts';
import { readBounded } from '../../core/outbound/read-bounded.ts';

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
 * The most the pipeline side reads of one answer. Everything it asks for is a few kilobytes: a token or a token map, the
 * broker's metadata, the CI's token, a cloud's credentials, an error. Whoever answers in its place (a mistyped URL, a
 * compromised proxy, the STS URL setting) could otherwise stream until the job runs out of memory.
 */
export const MAX_ANSWER_BYTES = 64 * 1024;

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

/** The statuses fetch would follow (Fetch standard, "redirect status"), when the answer names a Location. */
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * A redirect answered to a request that did not choose how to handle one. The pipeline's requests carry a token (the
 * CI token posted to the broker, a keyway token posted to /revoke or to a cloud's STS): a 307 or 308 would have fetch
 * send the same body to whatever host the Location names, so none is followed, and none is retried (it is an answer).
 */
export class RedirectRefusedError extends KeywayError {
  override readonly name = 'RedirectRefusedError';
  readonly code = 'redirect_refused';
  readonly status: number;
  /** The origin the redirect pointed to (not its path or query, which the job log has no use for). */
  readonly locationOrigin: string;

  constructor(method: string, url: string, status: number, location: string) {
    const origin = URL.canParse(location, url) ? new URL(location, url).origin : 'an unreadable Location';
    super(`${method} ${url.split('?')[0]} answered a ${status} redirect to ${origin}; keyway does not follow redirects with a token`);
    this.status = status;
    this.locationOrigin = origin;
  }
}

/**
 * `fetch` that retries network errors and 5xx answers, never 4xx: a 4xx is an answer (a
 * refusal, a missing permission), and asking again would only repeat it. After the last try
 * the last 5xx response is returned as it is, so the caller still reads its error body.
 * Requests are replayed as given, so bodies must be replayable (strings, URLSearchParams).
 *
 * Redirects are not followed unless the caller passes its own `redirect`: a redirect answer is thrown as a
 * RedirectRefusedError, at once, with the status and where it pointed in the message.
 *
 * The answer returned has been read whole within its try's deadline, up to MAX_ANSWER_BYTES: a longer one, or one that
 * breaks off or outlasts the deadline, is a FetchError (not retried), its rest cancelled unread.
 */
export function retryingFetch(policy: RetryPolicy, onRetry: (notice: RetryNotice) => void, fetchImpl: FetchLike = fetch): FetchLike {
  return async (url, init = {}) => {
    const method = init.method ?? 'GET';
    for (let attempt = 1; ; attempt += 1) {
      const last = attempt >= policy.attempts;
      let response: Response;
      try {
        const signals = [AbortSignal.timeout(policy.attemptTimeoutMs), ...(init.signal ? [init.signal] : [])];
        // 'manual' rather than 'error': the answer is seen, so the error can say what it was; it is never followed either way.
        response = await fetchImpl(url, { ...init, redirect: init.redirect ?? 'manual', signal: AbortSignal.any(signals) });
      } catch (error) {
        if (last || init.signal?.aborted === true) throw error;
        await pause(policy, onRetry, { method, url, attempt, reason: describeNetworkError(error), retryAfter: null });
        continue;
      }
      const location = response.headers.get('location');
      if (init.redirect === undefined && REDIRECT_STATUSES.has(response.status) && location !== null) {
        await response.body?.cancel();
        throw new RedirectRefusedError(method, url, response.status, location);
      }
      if (response.status < 500 || last) return readWhole(response, `${method} ${url.split('?')[0]}`);
      const retryAfter = response.headers.get('retry-after');
      await response.body?.cancel();
      await pause(policy, onRetry, { method, url, attempt, reason: `answered ${response.status}`, retryAfter });
    }
  };
}

/** The answer with its body read through readBounded, so that no caller reads an unbounded one. */
async function readWhole(response: Response, request: string): Promise<Response> {
  if (response.body === null) return response;
  const body = await readBounded(response, MAX_ANSWER_BYTES, request);
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

async function pause(
  policy: RetryPolicy,
  onRetry: (notice: RetryNotice) => void,
  { method, url, attempt, reason, retryAfter }: { method: string; url: string; attempt: number; reason: string; retryAfter: string | null },
): Promise<void> {
  const delayMs = backoffDelayMs(policy, attempt, retryAfter);
  onRetry({ method, url, attempt, attempts: policy.attempts, reason, delayMs });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
}

/** fetch's own message is "fetch failed"; the useful part (ECONNREFUSED, a reset) is in its cause. */
export function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // keyway's own (an answer too large, a redirect refused), also as the cause openid-client wraps what its fetch threw in.
  if (error instanceof KeywayError) return error.message;
  if (error.cause instanceof KeywayError) return error.cause.message;
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (error.name === 'TimeoutError') return 'timed out';
  if (cause !== undefined && typeof cause.code === 'string') return `${error.message} (${cause.code})`;
  if (cause !== undefined && typeof cause.message === 'string') return `${error.message} (${cause.message})`;
  return error.message;
}
