import { errorText, type Logger } from '../core/log.ts';
import type { LiveKeyRing } from '../core/mint/live-key-ring.ts';
import type { HealthReport } from '../core/policy/policy-health.ts';
import { NO_SNIFF, NO_STORE } from '../http/oauth-errors.ts';
import { retryAfter, type FailureBackoff } from './failure-backoff.ts';

/**
 * The routes that read no signing key, public or private, answered whatever the ring's age: how an operator sees that it
 * cannot be reloaded (`/healthz` degraded, the age in `/metrics`). Every other route signs, publishes or verifies with
 * the ring (the broker's own tokens included, at every operator API), so none is left out by mistake.
 */
const KEYLESS_PATHS: ReadonlySet<string> = new Set(['/healthz', '/metrics']);

/**
 * A key ring loaded `maxAgeMs` or longer before `request` arrived (at `arrived`) is reloaded before that request is
 * served (once `backoff` allows a try), and not served while it cannot be: a key withdrawn elsewhere must not stay in use.
 * Undefined when the request may be served (a route that reads no key always may); else the 503 to answer.
 */
export async function staleKeyRingRefusal(
  keys: LiveKeyRing,
  request: Request,
  { arrived, clock, maxAgeMs, backoff, log }: { arrived: number; clock: () => number; maxAgeMs: number; backoff: FailureBackoff; log: Logger },
): Promise<Response | undefined> {
  if (!keys.isOlderThan(arrived, maxAgeMs) || KEYLESS_PATHS.has(new URL(request.url).pathname)) return undefined;
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

/**
 * `report`, `degraded` while the key ring is `maxAgeMs` or older: no route that needs it is served. Only `/healthz` shows
 * it then (`/v1/health` verifies its token with the ring); how old the ring is, `/metrics` says on Node.
 */
export function withKeyRingAge(report: HealthReport, keys: LiveKeyRing, now: number, maxAgeMs: number): HealthReport {
  return keys.isOlderThan(now, maxAgeMs) ? { ...report, status: 'degraded' } : report;
}
