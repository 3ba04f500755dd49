import type { Context } from 'hono';
import { createApp, type AppEnv, type HealthReport } from './app.ts';
import type { AuditStore } from './audit/audit-event.ts';
import { DEFAULT_JWKS_CACHE_POLICY, JwksCache, type JwksCachePolicy } from './issuers/jwks-cache.ts';
import type { Logger } from './log.ts';
import type { PolicySet } from './policy/policy-set.ts';
import type { ReplayGuard } from './replay/replay-guard.ts';
import type { BrokerSettings } from './settings.ts';
import type { KeyRing } from './tokens/key-ring.ts';
import type { Hono } from 'hono';

/** What a runtime adapter supplies; everything else is the same on Node and Workers. */
export interface BrokerParts {
  readonly settings: BrokerSettings;
  readonly policies: () => PolicySet;
  readonly keys: () => KeyRing;
  readonly audit: AuditStore;
  readonly replay: ReplayGuard;
  readonly clientIp: (c: Context) => string | undefined;
  readonly health?: () => HealthReport;
  readonly log: Logger;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
  readonly jwksCachePolicy?: JwksCachePolicy;
}

export interface Broker {
  readonly app: Hono<AppEnv>;
  readonly jwks: JwksCache;
}

export const OUTBOUND_TIMEOUT_MS = 5000;
export const OUTBOUND_MAX_BYTES = 256 * 1024;

export function createBroker(parts: BrokerParts): Broker {
  const now = parts.now ?? Date.now;
  const jwks = new JwksCache(
    {
      fetch: parts.fetch ?? ((input, init) => fetch(input, init)),
      timeoutMs: OUTBOUND_TIMEOUT_MS,
      maxBytes: OUTBOUND_MAX_BYTES,
      allowHttpLoopback: parts.settings.allowHttpLoopback,
    },
    parts.jwksCachePolicy ?? DEFAULT_JWKS_CACHE_POLICY,
    now,
  );
  const app = createApp({
    exchange: {
      issuer: parts.settings.issuer,
      policies: parts.policies,
      keys: parts.keys,
      jwks,
      audit: parts.audit,
      replay: parts.replay,
      now,
      log: parts.log,
      clockToleranceSeconds: 60,
    },
    clientIp: parts.clientIp,
    health:
      parts.health ??
      (() => {
        const set = parts.policies();
        return { ok: true, details: { policies: set.policies.length, inactive_policies: set.inactive.length } };
      }),
  });
  return { app, jwks };
}
