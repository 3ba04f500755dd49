import { isLoopbackHttpUrl } from '../core/outbound/loopback-http-url.ts';
import { CliError } from './command.ts';

/**
 * How long `keyway audit … --url` and `keyway keys … --url` wait on a broker, in ms: for an answer read whole (a page,
 * the stats, a record, the keys, a rotation), from the request to its last byte; for the audit export, which streams for
 * as long as the log is long, for its first byte and then between any two.
 */
export interface RemoteDeadlines {
  readonly whole: number;
  readonly idle: number;
}

export const REMOTE_DEADLINES_MS: RemoteDeadlines = { whole: 60_000, idle: 30_000 };

/** One request's deadline: `whole` for an answer read whole, `idle` for one that streams. */
export type AnswerDeadline = { readonly whole: number } | { readonly idle: number };

/**
 * A request to a broker, held to `deadline`: a broker (or whatever answers in its place) that never answers, or trickles
 * its answer, must not hold the command for ever. Past the deadline, the request or the body fails with exit 1, the
 * request and the deadline in the message; a broker that cannot be reached is exit 1 too.
 */
/** A command's `--url` as the broker's origin: https, or http on loopback only. */
export function brokerOrigin(base: string): URL {
  if (!URL.canParse(base)) throw new CliError(`--url ${base} is not a URL`);
  const origin = new URL(base);
  if (origin.protocol !== 'https:' && !isLoopbackHttpUrl(origin))
    throw new CliError('--url must be https (http only on loopback): the token must not travel in the clear');
  return origin;
}

export async function fetchBroker(
  url: URL,
  init: { readonly method: 'GET' | 'POST'; readonly headers: Record<string, string>; readonly body?: string },
  deadline: AnswerDeadline,
): Promise<Response> {
  const request = `${init.method} ${url.pathname}`;
  const streams = 'idle' in deadline;
  const ms = streams ? deadline.idle : deadline.whole;
  const expired = streams ? `no byte of the answer to ${request} for ${ms / 1000} s` : `no complete answer to ${request} within ${ms / 1000} s`;
  const controller = new AbortController();
  // Aborted, the request or its body fails with this error as it is. Unref'd: an answer given up early (past its cap)
  // leaves it pending, and it must keep no finished command waiting.
  const timer = setTimeout(() => controller.abort(new CliError(expired, 1)), ms).unref();
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: 'error', signal: controller.signal });
  } catch (error) {
    clearTimeout(timer);
    if (controller.signal.aborted) throw controller.signal.reason;
    throw new CliError(`cannot reach ${url.origin}: ${(error as Error).message}`, 1);
  }
  if (response.body === null) {
    clearTimeout(timer);
    return response;
  }
  const timed = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, stream) {
        if (streams) timer.refresh();
        stream.enqueue(chunk);
      },
      flush: () => clearTimeout(timer),
    }),
  );
  return new Response(timed, { status: response.status, statusText: response.statusText, headers: response.headers });
}
