import { readAlertSettings, type AlertSettings } from '../features/alerts/alert-settings.ts';
import { readAuditSettings, type AuditSettings } from '../core/audit/audit-settings.ts';
import { readGitHubAppSettings, type GitHubAppSettings } from '../features/github/app/github-settings.ts';
import { isLoopbackHttpUrl } from '../core/outbound/loopback-http-url.ts';
import { readKeySettings, type KeySettings } from '../core/mint/key-life-cycle.ts';
import { readLimitSettings, type LimitSettings } from '../core/limits/limit-settings.ts';
import { readGitHubWebhookSettings, type GitHubWebhookSettings } from '../features/github/webhooks/webhook-settings.ts';
import { readRepositoryPolicySettings, type RepositoryPolicySettings } from '../features/github/repository-policies/repository-policy-settings.ts';
import { readDpopNonces, type DpopNonces } from '../core/dpop/dpop-nonce.ts';
import { readProxyUpstreams, type UpstreamDeclaration } from '../features/proxy/proxy-settings.ts';
import type { PolicyLoadOptions } from '../core/policy/load-policies.ts';
import { DEFAULT_GITHUB_DEPLOYMENT } from '../core/exchange/github-access-request.ts';
import { ConfigError, readFlag, readInteger, type SettingsSource } from '../core/settings/read-settings.ts';

/**
 * The broker's own issuer URL: an origin (no credentials, path, query or fragment), https unless on loopback. A refusal
 * does not quote it: a setting that is not the origin may be a URL with a password in it, or another setting's secret.
 */
export function checkBrokerIssuer(issuer: unknown): string {
  if (issuer === undefined) throw new ConfigError('KEYWAY_ISSUER is not set');
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) throw new ConfigError('KEYWAY_ISSUER is not a URL');
  const url = new URL(issuer);
  if (url.origin !== issuer)
    throw new ConfigError('KEYWAY_ISSUER must be an origin like https://keyway.example.com (no credentials, path, query or trailing slash)');
  if (url.protocol !== 'https:' && !isLoopbackHttpUrl(url)) throw new ConfigError('KEYWAY_ISSUER must use https unless it is on loopback');
  return issuer;
}

/** Settings both runtimes share. */
export interface BrokerSettings {
  readonly issuer: string;
  readonly allowHttpLoopback: boolean;
  readonly maxTtlSeconds: number;
  /** Checkpoints and retention of the audit log. */
  readonly audit: AuditSettings;
  /** Anomaly rules and their webhook. */
  readonly alerts: AlertSettings;
  /** The signing keys' rotation schedule. */
  readonly keys: KeySettings;
  /** Rate limits of /token. */
  readonly limits: LimitSettings;
  /** The GitHub App keyway mints installation tokens as; undefined when none is configured. */
  readonly github?: GitHubAppSettings | undefined;
  /** `POST /webhooks/github` and the central policy repository; undefined when no webhook secret is set. */
  readonly githubWebhooks?: GitHubWebhookSettings;
  /** What repository-owned policies may grant and which issuers they may name. */
  readonly repositoryPolicies: RepositoryPolicySettings;
  /** RFC 9449 server nonces at /token (KEYWAY_DPOP_NONCE_KEY); undefined when proofs need none. */
  readonly dpopNonces?: DpopNonces | undefined;
  /** Proxy mode's upstreams (KEYWAY_PROXY_UPSTREAMS); empty when none is declared. */
  readonly proxyUpstreams?: readonly UpstreamDeclaration[];
}

export function readBrokerSettings(env: SettingsSource, defaultIssuer?: string): BrokerSettings {
  const allowHttpLoopback = readFlag(env, 'KEYWAY_ALLOW_HTTP_LOOPBACK');
  const githubWebhooks = readGitHubWebhookSettings(env);
  const github = readGitHubAppSettings(env);
  const issuer = checkBrokerIssuer(env['KEYWAY_ISSUER'] || defaultIssuer);
  return {
    issuer,
    allowHttpLoopback,
    maxTtlSeconds: readInteger(env, 'KEYWAY_MAX_TTL_SECONDS', 3600, 60, 24 * 3600),
    audit: readAuditSettings(env),
    alerts: readAlertSettings(env, allowHttpLoopback || readFlag(env, 'KEYWAY_DEV')),
    keys: readKeySettings(env),
    limits: readLimitSettings(env),
    github,
    repositoryPolicies: readRepositoryPolicySettings(env),
    ...(githubWebhooks === undefined ? {} : { githubWebhooks }),
    dpopNonces: readDpopNonces(env),
    proxyUpstreams: readProxyUpstreams(env, { issuer, allowHttpLoopback, githubApp: github !== undefined }),
  };
}

/**
 * How this broker loads policies, wherever they come from (its directory or bundle, the live set, a repository's own, the
 * policy commands): its issuer, its longest TTL, the loopback rule, its keyway-jwt upstreams' audiences, the policy
 * repository its review protects, and the GitHub deployment its App mints on (github.com's without an App, as the exchange takes it).
 */
export function policyLoadOptionsOf(settings: BrokerSettings): PolicyLoadOptions {
  const reviewed = settings.githubWebhooks?.policyRepository;
  return {
    brokerIssuer: settings.issuer,
    maxTtlSeconds: settings.maxTtlSeconds,
    allowHttpLoopback: settings.allowHttpLoopback,
    upstreamAudiences: (settings.proxyUpstreams ?? []).flatMap((upstream) => (upstream.auth.kind === 'keyway-jwt' ? [upstream.auth.audience] : [])),
    githubDeployment: settings.github?.deployment ?? DEFAULT_GITHUB_DEPLOYMENT,
    ...(reviewed === undefined ? {} : { reviewedRepository: { owner: reviewed.owner, name: reviewed.name, id: String(reviewed.id) } }),
  };
}
