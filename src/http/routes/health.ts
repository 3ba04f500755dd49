import { Hono } from 'hono';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import type { HealthReport } from '../../core/policy/policy-health.ts';
import { keywayAuth } from '../middleware/keyway-auth.ts';
import { ownKeys } from '../middleware/own-keys.ts';
import { NO_STORE } from '../oauth-errors.ts';

/** The scope a keyway token needs to read the broker's health in detail (`GET /v1/health`). */
export const HEALTH_READ_SCOPE = 'health:read';

export interface HealthDeps {
  /** The broker's issuer: the audience and issuer of the tokens that may read the health in detail. */
  readonly issuer: string;
  readonly keys: () => KeyRing;
  readonly health: () => HealthReport;
}

/**
 * `GET /healthz` is public: up or degraded, nothing more. Policy files, issuers and load problems
 * are for operators: `GET /v1/health`, with a keyway token for this broker and scope `health:read`.
 */
export function healthRoutes(deps: HealthDeps): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ status: deps.health().status }, 200, NO_STORE));
  const operator = keywayAuth({ issuer: deps.issuer, audience: deps.issuer, scopes: [HEALTH_READ_SCOPE], keys: ownKeys(deps.keys) });
  routes.get('/v1/health', operator, (c) => c.json(deps.health(), 200, NO_STORE));
  return routes;
}
