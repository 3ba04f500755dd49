import type { Context } from 'hono';
import { createApp, type AppEnv } from '../http/app.ts';
import { reportExchange } from '../http/report-exchange.ts';
import { policyHealth, type HealthReport } from '../core/policy/policy-health.ts';
import type { AuditLog, AuditStore } from '../core/audit/audit-event.ts';
import type { ShardedAuditLog } from '../core/audit/sharded-audit-log.ts';
import { DEFAULT_JWKS_CACHE_POLICY, JwksCache, type JwksCachePolicy } from '../core/verify/jwks-cache.ts';
import { outboundHttp } from '../core/outbound/outbound-http.ts';
import type { Logger } from '../core/log.ts';
import type { PolicySet } from '../core/policy/policy-set.ts';
import type { ReplayGuard } from '../core/replay/replay-guard.ts';
import type { RevocationList } from '../core/revocation/revocation-list.ts';
import type { EndedCiWork } from '../core/replay/ended-ci-work.ts';
import { revokeEndedWorkTokens, runEnd, type RunWorkEnded } from '../features/github/webhooks/revoke-ended-work-tokens.ts';
import { policyLoadOptionsOf, type BrokerSettings } from '../config/broker-settings.ts';
import type { KeyRing } from '../core/mint/key-ring.ts';
import { keyLifeCycle } from '../core/mint/key-life-cycle.ts';
import type { KeyStore } from '../core/mint/key-store.ts';
import type { JwtCrypto } from '../core/mint/jwt-crypto.ts';
import type { Hono } from 'hono';
import type { AlertStore } from '../features/alerts/alert-store.ts';
import { alertRaiser } from '../features/alerts/raise-alerts.ts';
import { signWebhookBody } from '../features/alerts/sign-webhook.ts';
import { requestLimits, type RequestLimits } from '../core/limits/request-limits.ts';
import type { RateLimiter } from '../core/limits/rate-limiter.ts';
import { noMetrics, type BrokerMetrics } from '../features/metrics/broker-metrics.ts';
import type { GitHubTokens } from '../features/github/app/github-tokens.ts';
import { githubWebhookRoutes, type GitHubWebhookDeps } from '../http/routes/github-webhooks.ts';
import type { RepositoryName } from '../core/exchange/ports.ts';
import type { BackupApiDeps } from '../http/routes/backup.ts';
import type { AuditApiDeps } from '../http/routes/audit.ts';
import type { AuditShardsApi } from '../core/audit/audit-shards.ts';
import { READ_PERMISSIONS, repositoryAccessVia, type GitHubApp } from '../features/github/repository-policies/github-repository-access.ts';
import { orgGuardrailsFor } from '../features/github/repository-policies/org-guardrails.ts';
import { UpstreamCredentials, type Upstream } from '../features/proxy/upstream-credential.ts';
import { RepositoryPolicySource, repositoryPolicyRules, type RepositoryPolicyRules } from '../features/github/repository-policies/repository-policies.ts';

/** What a runtime adapter supplies; everything else is the same on Node and Workers. */
export interface BrokerParts {
  readonly settings: BrokerSettings;
  readonly policies: () => PolicySet;
  readonly keys: () => KeyRing;
  /** Where the ring comes from: `/v1/keys` lists and rotates through it (both runtimes supply it). */
  readonly keyStore?: KeyStore;
  /** Once `/v1/keys/withdraw` withdrew a key: this process's ring reloaded at once (Node: and the WAL emptied of the private part). */
  readonly keysWithdrawn?: () => Promise<void>;
  /** One hash chain (Node), or the shards' chains with their root checkpoints (Workers). */
  readonly audit: AuditStore | { readonly sharded: ShardedAuditLog; readonly api: AuditShardsApi };
  readonly replay: ReplayGuard;
  /** Keyway tokens revoked before their `exp` (RFC 7009), kept in the replay guard's store. */
  readonly revocations: RevocationList;
  /** The CI jobs and run attempts GitHub's webhooks said completed, kept in the replay guard's store: their tokens are refused. */
  readonly endedCiWork?: EndedCiWork;
  /** Alert state, in the same database as the audit log. */
  readonly alerts: AlertStore;
  /** Keeps work alive after the response (Workers: waitUntil). Default: let it run, log a failure. */
  readonly background?: (c: Context, task: Promise<void>) => void;
  readonly clientIp: (c: Context) => string | undefined;
  readonly health?: () => HealthReport;
  readonly log: Logger;
  readonly now?: () => number;
  /**
   * How the runtime connects out: publicAddressFetch on Node, the platform's fetch on Workers
   * (the default). Every outbound call goes through outboundHttp around it.
   */
  readonly fetch?: typeof fetch;
  readonly jwksCachePolicy?: JwksCachePolicy;
  /** Where the rate limits' buckets live: in the process (Node) or in Durable Objects (Workers). */
  readonly limiter: RateLimiter;
  /** The exchange's token crypto: jose on WebCrypto by default (Workers), node:crypto on Node. */
  readonly crypto?: JwtCrypto;
  /** Node keeps a registry for /metrics; Workers reads the same facts from the logs. */
  readonly metrics?: BrokerMetrics;
  /** GitHub installation tokens, when a GitHub App is configured. */
  readonly github?: GitHubTokens;
  /** What `POST /webhooks/github` needs from the runtime; mounted when settings.githubWebhooks is set. */
  readonly webhooks?: Pick<GitHubWebhookDeps, 'deliveries' | 'live' | 'loadOptions'>;
  /** Export and restore of the whole state, where the runtime offers them (Workers: the state Durable Object). */
  readonly backup?: Pick<BackupApiDeps, 'exportState' | 'restoreState' | 'restoreToken' | 'maxBytes'>;
  /** Proxy mode's upstreams, their static secrets opened (features/proxy/upstream-credential.ts: openUpstreams); none by default. */
  readonly proxyUpstreams?: ReadonlyMap<string, Upstream>;
  /** The request target as the client sent it, where the runtime has it (Node), so /proxy/… sees dot segments before any URL parser resolves them. */
  readonly requestTarget?: (c: Context) => string | undefined;
}

export interface Broker {
  readonly app: Hono<AppEnv>;
  readonly jwks: JwksCache;
  /** The GitHub App side (client, installation cache, per-run revocation), when configured. */
  readonly github: GitHubTokens | undefined;
}

export function createBroker(parts: BrokerParts): Broker {
  const now = parts.now ?? Date.now;
  const http = outboundHttp(parts.fetch ?? ((input, init) => fetch(input, init)), parts.settings.allowHttpLoopback);
  const metrics = parts.metrics ?? noMetrics;
  const jwks = new JwksCache(http, parts.jwksCachePolicy ?? DEFAULT_JWKS_CACHE_POLICY, now, (fetched) => {
    metrics.jwksFetch(fetched.issuer, fetched.outcome);
    const fields = {
      issuer: fetched.issuer,
      outcome: fetched.outcome,
      duration_ms: Math.round(fetched.seconds * 1000),
      ...(fetched.error === undefined ? {} : { error: fetched.error }),
    };
    if (fetched.outcome === 'ok') parts.log.info('jwks fetch', fields);
    else parts.log.warn('jwks fetch', fields);
  });
  const { alerts: alertSettings } = parts.settings;
  const audit = auditParts(parts.audit);
  const onAudited = alertRaiser({
    store: parts.alerts,
    audit: audit.log,
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
            timeoutMs: http.timeoutMs,
            fetch: http.fetch,
            broker: parts.settings.issuer,
            sign: (body) => signWebhookBody(body, parts.keys().signing),
          },
  });
  const background =
    parts.background ??
    ((_c: Context, task: Promise<void>) => {
      task.catch((error: unknown) => parts.log.error('background task failed', { error: String(error) }));
    });
  const github = parts.github;
  // The GitHub whose webhooks come here, the App's: its repository and run ids are of its own counters, no other deployment's.
  const githubDeployment = github?.deployment;
  // Only GitHub's workflow webhooks record completions: without them there is nothing to read.
  const endedCiWork = parts.settings.githubWebhooks === undefined ? undefined : parts.endedCiWork;
  const endedCiWorkCheck = endedCiWork === undefined ? undefined : { ended: endedCiWork, deployment: githubDeployment };
  const limits = requestLimits(parts.limiter, parts.settings.limits, now, parts.log);
  const repositoryRules = (): RepositoryPolicyRules => repositoryPolicyRules(parts.settings.repositoryPolicies, parts.policies());
  const repositoryPolicies = github === undefined ? undefined : repositoryPolicySource(github, parts.settings, { limits, rules: repositoryRules, now });
  const app = createApp({
    exchange: {
      issuer: parts.settings.issuer,
      policies: parts.policies,
      keys: parts.keys,
      jwks,
      audit: audit.log,
      replay: parts.replay,
      now,
      log: parts.log,
      clockToleranceSeconds: 60,
      limits,
      ...(parts.crypto === undefined ? {} : { crypto: parts.crypto }),
      ...(parts.settings.dpopNonces === undefined ? {} : { dpopNonces: parts.settings.dpopNonces }),
      ...(github === undefined || repositoryPolicies === undefined ? {} : { github, repositoryPolicies }),
      ...(endedCiWorkCheck === undefined ? {} : { endedCiWork: endedCiWorkCheck }),
    },
    clientIp: parts.clientIp,
    audit: {
      issuer: parts.settings.issuer,
      audit: audit.log,
      chain: audit.chain,
      ...(audit.shards === undefined ? {} : { shards: audit.shards }),
      alerts: parts.alerts,
      keys: parts.keys,
      now,
      policies: parts.policies,
      log: parts.log,
    },
    answered: (c, { context, result, status, seconds }) => {
      // Alert rules read each durable record in the background; the log line and the metrics are written now.
      if (result.recorded !== undefined) background(c, onAudited(result.recorded.event, result.recorded.link));
      reportExchange(parts.log, metrics, context, result, status, seconds);
    },
    // A refused operator credential is a refusal from its client too: a brute force on the operator APIs is a burst of them.
    operatorRefused: (c, { event, link }) => background(c, onAudited(event, link)),
    ...(parts.keyStore === undefined
      ? {}
      : {
          keyApi: {
            store: parts.keyStore,
            cycle: keyLifeCycle(parts.settings.keys, parts.settings.maxTtlSeconds),
            audit: audit.log,
            now,
            log: parts.log,
            clientIp: parts.clientIp,
            ...(parts.keysWithdrawn === undefined ? {} : { withdrawn: parts.keysWithdrawn }),
          },
        }),
    ...(parts.backup === undefined ? {} : { backupApi: { ...parts.backup, log: parts.log } }),
    ...(parts.settings.githubWebhooks === undefined || parts.webhooks === undefined
      ? {}
      : {
          webhooks: githubWebhookRoutes(parts.settings.githubWebhooks.secret, {
            ...parts.webhooks,
            clientIp: parts.clientIp,
            metrics,
            settings: parts.settings.githubWebhooks,
            repositoryRules,
            openRepository: github === undefined ? undefined : repositoryAccessVia(github),
            ...(github === undefined
              ? {}
              : {
                  installationChanged: (owner: string) => {
                    github.invalidateInstallations(owner);
                    repositoryPolicies?.forgetOwner(owner);
                  },
                  guardrailsChanged: (owner: string) => repositoryPolicies?.forgetGuardrails(owner),
                  repositoryPoliciesChanged: (repository: RepositoryName) => repositoryPolicies?.forgetRepository(repository),
                  endGitHubTokens: (ended: RunWorkEnded) => github.revokeEndedWork(ended.repositoryId, ended.runId, runEnd(ended)),
                }),
            ...(githubDeployment === undefined ? {} : { deployment: githubDeployment }),
            audit: audit.log,
            ...(endedCiWork === undefined
              ? {}
              : {
                  recordEnded: (ended: RunWorkEnded) =>
                    endedCiWork.record(ended.deployment, ended.repositoryId, ended.runId, runEnd(ended), ended.deliveryId, now()),
                }),
            endKeywayTokens: (ended: RunWorkEnded) =>
              revokeEndedWorkTokens(
                {
                  issuer: parts.settings.issuer,
                  issuers: parts.policies,
                  audit: audit.log,
                  revocations: parts.revocations,
                  now,
                },
                ended,
              ),
            now,
            log: parts.log,
          }),
        }),
    health: parts.health ?? (() => policyHealth(parts.policies(), undefined)),
    revocations: parts.revocations,
    ...(github === undefined ? {} : { githubTokens: github }),
    metrics,
    proxy: {
      proxy: {
        issuer: parts.settings.issuer,
        policies: parts.policies,
        jwks,
        audit: audit.log,
        now,
        log: parts.log,
        clockToleranceSeconds: 60,
        ...(parts.crypto === undefined ? {} : { crypto: parts.crypto }),
        ...(endedCiWorkCheck === undefined ? {} : { endedCiWork: endedCiWorkCheck }),
        upstreams: parts.proxyUpstreams ?? new Map(),
        credentials: new UpstreamCredentials({
          issuer: parts.settings.issuer,
          keys: parts.keys,
          now,
          ...(parts.crypto === undefined ? {} : { crypto: parts.crypto }),
          ...(github === undefined ? {} : { github }),
        }),
        fetch: http.fetch,
        limits,
        limiter: parts.limiter,
        revocations: parts.revocations,
      },
      clientIp: parts.clientIp,
      ...(parts.requestTarget === undefined ? {} : { requestTarget: parts.requestTarget }),
      background,
    },
  });
  return { app, jwks, github: parts.github };
}

/** What the audit routes read: the log, its chains by name, and a sharded log's root checkpoints. */
function auditParts(audit: BrokerParts['audit']): Pick<AuditApiDeps, 'chain' | 'shards'> & { readonly log: AuditLog } {
  if (!('sharded' in audit)) return { log: audit, chain: (name) => (name === undefined ? audit : undefined) };
  const { sharded, api } = audit;
  return { log: sharded, chain: (name) => sharded.chain(name), shards: api };
}

/** How long a repository's own policy is used before it is fetched again, and how many are kept. */
export const REPOSITORY_POLICY_CACHE = { ttlSeconds: 60, maxEntries: 1000 } as const;

/**
 * Repository-owned policies, read through the App with contents: read only, at most at the per-caller fetch rate,
 * loaded with the broker's own limits (never the dev issuer), with their organisation's own guardrails where the operator pins them.
 */
function repositoryPolicySource(
  app: GitHubApp,
  settings: BrokerSettings,
  { limits, rules, now }: { limits: RequestLimits; rules: () => RepositoryPolicyRules; now: () => number },
): RepositoryPolicySource {
  const open = repositoryAccessVia(app, READ_PERMISSIONS);
  const loadOptions = policyLoadOptionsOf(settings);
  return new RepositoryPolicySource({
    open,
    loadOptions,
    rules,
    now,
    beforeFetch: (caller) => limits.forRepositoryPolicyFetch(caller),
    guardrailsFor: orgGuardrailsFor({ open, account: (owner) => app.installations.get(owner), loadOptions, rules }),
    ...REPOSITORY_POLICY_CACHE,
  });
}
