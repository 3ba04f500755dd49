import { errorText, type Logger } from '../core/log.ts';
import type { LiveKeyRing } from '../core/mint/live-key-ring.ts';
import { NO_SNIFF, NO_STORE } from '../http/oauth-errors.ts';
import { retryAfter, type FailureBackoff } from './failure-backoff.ts';

/**
 * A key ring loaded `maxAgeMs` or longer before a request that arrived at `arrived` is reloaded before that request is
 * served (once `backoff` allows a try), and not served while it cannot be: a key withdrawn elsewhere must not stay in use.
 * Undefined when the ring may be served; else the 503 to answer.
 */
export async function staleKeyRingRefusal(
  keys: LiveKeyRing,
  { arrived, clock, maxAgeMs, backoff, log }: { arrived: number; clock: () => number; maxAgeMs: number; backoff: FailureBackoff; log: Logger },
): Promise<Response | undefined> {
  if (!keys.isOlderThan(arrived, maxAgeMs)) return undefined;
  const reloaded = await backoff.attempt(
    arrived,
    clock,
    () => keys.refresh(arrived),
    (error, failure) => log.error('signing keys failed to load', { error: errorText(error), failures: failure.failures, retry_in_ms: failure.waitMs }),
  );
  if ('value' in reloaded) return undefined;
  return Response.json(
    { error: 'temporarily_unavailable', error_description: 'the signing keys are unavailable' },
    { status: 503, headers: { ...NO_STORE, ...NO_SNIFF, 'Retry-After': retryAfter(reloaded.waitMs) } },
  );
}
