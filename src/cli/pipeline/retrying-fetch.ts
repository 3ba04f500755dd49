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
 * What the latest retried try whose request may have reached its server met: an answer it got, or the network error that
 * cut it off, perhaps after its request was sent. A try that never connected (refused, no such host) used nothing up, so
 * it is not one: the retry's refusal is then the retry's own, or judged by a try before.
 */
export interface EarlierTry {
  /** As the retry notice says it: `answered 503`, or the network error described. */
  readonly reason: string;
  /** The 5xx answer, read; undefined when the try failed on the network. */
  readonly answer: Response | undefined;
}

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
 * What `retryingFetch` gives: a fetch that sends the same request on every try, and `renewing` for a request that must be
 * made anew for each.
 */
export interface RetryingFetch extends FetchLike {
  /**
   * Tries `send` as the fetch tries a request (the same tries, backoff, Retry-After, deadline, notices, redirects refused,
   * answers bounded), but `send` makes its request anew for every try, through the one-try fetch it is given. For a
   * request carrying something its server uses up on reading it (a DPoP proof, a single-use CI token), which a 5xx
   * answered after that leaves spent, as does a connection lost once the request was sent. A try is retried when the last
   * request it made failed on the network or was answered a 5xx (not on the last try); `send`'s own result or error is
   * then set aside. `earlier` is what the latest try before this one that may have reached its server met (EarlierTry),
   * undefined when there was none.
   */
  renewing<T>(send: (once: FetchLike, earlier: EarlierTry | undefined) => Promise<T>): Promise<T>;
}

/** Network errors met before a connection was made: the request, and what it carried, never left this machine. */
const UNSENT: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function neverSent(error: unknown): boolean {
  const code = error instanceof Error ? (error.cause as { code?: unknown } | undefined)?.code : undefined;
  return typeof code === 'string' && UNSENT.has(code);
}

/**
 * `fetch` that retries network errors and 5xx answers, never 4xx: a 4xx is an answer (a
 * refusal, a missing permission), and asking again would only repeat it. After the last try
 * the last 5xx response is returned as it is, so the caller still reads its error body.
 * Requests are replayed as given, so bodies must be replayable (strings, URLSearchParams);
 * a request that must not be sent twice goes through `renewing`.
 *
 * Redirects are not followed unless the caller passes its own `redirect`: a redirect answer is thrown as a
 * RedirectRefusedError, at once, with the status and where it pointed in the message.
 *
 * The answer returned has been read whole within its try's deadline, up to MAX_ANSWER_BYTES: a longer one, or one that
 * breaks off or outlasts the deadline, is a FetchError (not retried), its rest cancelled unread.
 */
export function retryingFetch(policy: RetryPolicy, onRetry: (notice: RetryNotice) => void, fetchImpl: FetchLike = fetch): RetryingFetch {
  const renewing = async <T>(send: (once: FetchLike, earlier: EarlierTry | undefined) => Promise<T>): Promise<T> => {
    let earlier: EarlierTry | undefined;
    for (let attempt = 1; ; attempt += 1) {
      const last = attempt >= policy.attempts;
      // What the try's latest request met that is worth another try; each request of the try clears it.
      let retry: { method: string; url: string; reason: string; retryAfter: string | null; answer?: Response; unsent?: true } | undefined;
      const once: FetchLike = async (url, init = {}) => {
        const method = init.method ?? 'GET';
        retry = undefined;
        let response: Response;
        try {
          const signals = [AbortSignal.timeout(policy.attemptTimeoutMs), ...(init.signal ? [init.signal] : [])];
          // 'manual' rather than 'error': the answer is seen, so the error can say what it was; it is never followed either way.
          response = await fetchImpl(url, { ...init, redirect: init.redirect ?? 'manual', signal: AbortSignal.any(signals) });
        } catch (error) {
          if (!last && init.signal?.aborted !== true) {
            retry = { method, url, reason: describeNetworkError(error), retryAfter: null, ...(neverSent(error) ? { unsent: true as const } : {}) };
          }
          throw error;
        }
        const location = response.headers.get('location');
        if (init.redirect === undefined && REDIRECT_STATUSES.has(response.status) && location !== null) {
          await response.body?.cancel();
          throw new RedirectRefusedError(method, url, response.status, location);
        }
        if (response.status < 500 || last) return readWhole(response, `${method} ${url.split('?')[0]}`);
        // Kept for the next try to name; one that cannot be read whole is retried all the same, unread.
        const answer = await readWhole(response, `${method} ${url.split('?')[0]}`).catch(async () => {
          await response.body?.cancel().catch(() => {});
          return new Response(null, { status: response.status, headers: response.headers });
        });
        retry = { method, url, reason: `answered ${response.status}`, retryAfter: response.headers.get('retry-after'), answer };
        return answer.clone();
      };
      let outcome: { value: T } | { error: unknown };
      try {
        outcome = { value: await send(once, earlier) };
      } catch (error) {
        outcome = { error };
      }
      if (retry === undefined) {
        if ('error' in outcome) throw outcome.error;
        return outcome.value;
      }
      if (retry.unsent === undefined) earlier = { reason: retry.reason, answer: retry.answer };
      await pause(policy, onRetry, { ...retry, attempt });
    }
  };
  const retrying = (url: string, init?: RequestInit) => renewing((once) => once(url, init));
  return Object.assign(retrying, { renewing });
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
