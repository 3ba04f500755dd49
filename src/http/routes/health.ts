import { Hono } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { HealthReport } from '../../core/policy/policy-health.ts';
import { NO_STORE } from '../oauth-errors.ts';

/** The scope a keyway token needs to read the broker's health in detail (`GET /v1/health`). */
export const HEALTH_READ_SCOPE = 'health:read';

export interface HealthDeps {
  readonly health: () => HealthReport;
}

/**
 * `GET /healthz` is public: up or degraded, nothing more. Policy files, issuers and load problems
 * are for operators: `GET /v1/health`, with a keyway token for this broker and scope `health:read`.
 */
export function healthRoutes(deps: HealthDeps, own: OwnTokens): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ status: deps.health().status }, 200, NO_STORE));
  const operator = operatorAuth(own, [HEALTH_READ_SCOPE]);
  routes.get('/v1/health', operator, (c) => c.json(deps.health(), 200, NO_STORE));
  return routes;
}
