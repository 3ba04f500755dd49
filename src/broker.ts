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
import type { AlertStore } from './alerts/alert-store.ts';
import { alertRaiser } from './alerts/raise-alerts.ts';
import { signWebhookBody } from './alerts/sign-webhook.ts';
import { githubWebhookRoutes, type GitHubWebhookDeps } from './github-webhooks/webhook-routes.ts';
import { repositoryAccessVia, type GitHubApp } from './github-webhooks/github-repository-access.ts';
import { GitHubClient } from './github/github-client.ts';
import { InstallationCache } from './github/installation-cache.ts';
import type { GitHubAppSettings } from './github/github-settings.ts';

/** What a runtime adapter supplies; everything else is the same on Node and Workers. */
export interface BrokerParts {
  readonly settings: BrokerSettings;
  readonly policies: () => PolicySet;
  readonly keys: () => KeyRing;
  readonly audit: AuditStore;
  readonly replay: ReplayGuard;
  /** Alert state, in the same database as the audit log. */
  readonly alerts: AlertStore;
  /** Keeps work alive after the response (Workers: waitUntil). Default: let it run, log a failure. */
  readonly background?: (c: Context, task: Promise<void>) => void;
  readonly clientIp: (c: Context) => string | undefined;
  readonly health?: () => HealthReport;
  readonly log: Logger;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
  readonly jwksCachePolicy?: JwksCachePolicy;
  /** What `POST /webhooks/github` needs from the runtime; mounted when settings.githubWebhooks is set. */
  readonly webhooks?: Pick<GitHubWebhookDeps, 'deliveries' | 'live' | 'loadOptions'>;
}

export interface Broker {
  readonly app: Hono<AppEnv>;
  readonly jwks: JwksCache;
}

export const OUTBOUND_TIMEOUT_MS = 5000;
export const OUTBOUND_MAX_BYTES = 256 * 1024;
/** A contents answer carries a file of up to the loader's cap, base64-encoded. */
const GITHUB_MAX_BYTES = 1024 * 1024;

export function createBroker(parts: BrokerParts): Broker {
  const now = parts.now ?? Date.now;
  const outbound = parts.fetch ?? ((input, init) => fetch(input, init));
  const jwks = new JwksCache(
    {
      fetch: outbound,
      timeoutMs: OUTBOUND_TIMEOUT_MS,
      maxBytes: OUTBOUND_MAX_BYTES,
      allowHttpLoopback: parts.settings.allowHttpLoopback,
    },
    parts.jwksCachePolicy ?? DEFAULT_JWKS_CACHE_POLICY,
    now,
  );
  const { alerts: alertSettings } = parts.settings;
  const onAudited = alertRaiser({
    store: parts.alerts,
    settings: alertSettings,
    policies: parts.policies,
    now,
    log: parts.log,
    webhook:
      alertSettings.webhookUrl === undefined
        ? undefined
        : {
            url: alertSettings.webhookUrl,
            attempts: alertSettings.webhookAttempts,
            backoffMs: alertSettings.webhookBackoffMs,
            timeoutMs: OUTBOUND_TIMEOUT_MS,
            fetch: outbound,
            broker: parts.settings.issuer,
            sign: (body) => signWebhookBody(body, parts.keys().signing),
          },
  });
  const githubApp = parts.settings.github === undefined ? undefined : gitHubApp(parts.settings.github, { fetch: outbound, allowHttpLoopback: parts.settings.allowHttpLoopback, now });
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
    audit: { issuer: parts.settings.issuer, audit: parts.audit, alerts: parts.alerts, keys: parts.keys, now },
    onAudited,
    ...(parts.settings.githubWebhooks === undefined || parts.webhooks === undefined
      ? {}
      : {
          webhooks: githubWebhookRoutes(parts.settings.githubWebhooks.secret, {
            ...parts.webhooks,
            settings: parts.settings.githubWebhooks,
            openRepository: githubApp === undefined ? undefined : repositoryAccessVia(githubApp),
            ...(githubApp === undefined ? {} : { installationChanged: (owner: string) => void githubApp().then((held) => held.installations.invalidate(owner)) }),
            audit: parts.audit,
            now,
            log: parts.log,
          }),
        }),
    background:
      parts.background ??
      ((_c, task) => {
        task.catch((error: unknown) => parts.log.error('background task failed', { error: String(error) }));
      }),
    health:
      parts.health ??
      (() => {
        const set = parts.policies();
        return { ok: true, details: { policies: set.policies.length, inactive_policies: set.inactive.length } };
      }),
  });
  return { app, jwks };
}

/** Installations remembered at most, whatever the TTL. */
const MAX_CACHED_INSTALLATIONS = 1000;

/** The GitHub App, made on first use (importing its key is async) and then shared: one client, one installation cache. */
function gitHubApp(settings: GitHubAppSettings, options: { fetch: typeof fetch; allowHttpLoopback: boolean; now: () => number }): () => Promise<GitHubApp> {
  let made: Promise<GitHubApp> | undefined;
  return () => {
    made ??= GitHubClient.create({ settings, fetch: options.fetch, timeoutMs: OUTBOUND_TIMEOUT_MS, maxBytes: GITHUB_MAX_BYTES, allowHttpLoopback: options.allowHttpLoopback, now: options.now }).then((client) => ({
      client,
      installations: new InstallationCache(client, { ttlSeconds: settings.installationCacheSeconds, maxEntries: MAX_CACHED_INSTALLATIONS }, options.now),
    }));
    made.catch(() => {
      made = undefined;
    });
    return made;
  };
}
