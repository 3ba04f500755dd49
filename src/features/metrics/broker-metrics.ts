import type { MetricsRegistry } from './registry.ts';

/** What the broker counts. Node keeps it in a registry served at /metrics; on Workers nothing is kept here (the same facts are in the logs). */
export interface BrokerMetrics {
  exchange(decision: string, reason: string, seconds: number): void;
  jwksFetch(issuer: string, outcome: 'ok' | 'error'): void;
  auditAppend(outcome: 'ok' | 'error', seconds: number): void;
  rateLimited(limit: string, endpoint: RateLimitedEndpoint): void;
}

/**
 * Where a rate limit refused a request: `/token`, `/proxy/…`, `POST /revoke`, an operator credential (`/v1/*`, the `/audit`
 * page), `POST /webhooks/github` (the bodies held).
 */
export type RateLimitedEndpoint = 'token' | 'proxy' | 'revoke' | 'operator' | 'webhook';

export const noMetrics: BrokerMetrics = { exchange() {}, jwksFetch() {}, auditAppend() {}, rateLimited() {} };

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The broker's metrics, registered in `registry`. Names and labels are listed in docs/operations/observability.md. */
export function brokerMetrics(registry: MetricsRegistry): BrokerMetrics {
  const exchanges = registry.counter('keyway_exchanges_total', 'Token exchanges answered, by decision and reason code.', ['decision', 'reason']);
  const latency = registry.histogram(
    'keyway_exchange_duration_seconds',
    'Time to answer a token exchange, audit append included.',
    ['decision'],
    LATENCY_BUCKETS,
  );
  const jwksFetches = registry.counter('keyway_jwks_fetches_total', "Fetches of an issuer's discovery document and JWKS, by issuer and outcome.", [
    'issuer',
    'outcome',
  ]);
  const auditAppends = registry.histogram(
    'keyway_audit_append_duration_seconds',
    'Time to append one audit record durably, by outcome.',
    ['outcome'],
    LATENCY_BUCKETS,
  );
  const limited = registry.counter(
    'keyway_rate_limited_total',
    'Requests refused by a rate limit, by limit (global, client, subject, repository_policy, repository_policy_tenant, unverified, tenant_refusals, proxy:<upstream>, webhook_bodies) and endpoint (token, proxy, revoke, operator, webhook).',
    ['limit', 'endpoint'],
  );
  // Known series start at 0, so a rate() over them has a beginning.
  const known: Record<RateLimitedEndpoint, readonly string[]> = {
    token: ['global', 'client', 'subject', 'repository_policy', 'repository_policy_tenant', 'unverified', 'tenant_refusals'],
    proxy: ['global', 'client', 'unverified', 'tenant_refusals'],
    revoke: ['global', 'client', 'unverified'],
    operator: ['subject', 'unverified'],
    webhook: ['webhook_bodies'],
  };
  for (const [endpoint, limits] of Object.entries(known)) for (const limit of limits) limited.inc({ limit, endpoint }, 0);
  return {
    exchange: (decision, reason, seconds) => {
      exchanges.inc({ decision, reason });
      latency.observe({ decision }, seconds);
    },
    jwksFetch: (issuer, outcome) => jwksFetches.inc({ issuer, outcome }),
    auditAppend: (outcome, seconds) => auditAppends.observe({ outcome }, seconds),
    rateLimited: (limit, endpoint) => limited.inc({ limit, endpoint }),
  };
}
