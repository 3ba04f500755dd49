import { createBroker, OUTBOUND_MAX_BYTES, OUTBOUND_TIMEOUT_MS } from '../broker.ts';
import { createGitHubTokens } from '../github/create-github-tokens.ts';
import type { GitHubTokens } from '../github/github-tokens.ts';
import { readMasterKeys } from '../secrets/master-keys.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import type { Logger } from '../log.ts';
import { loadPolicies, type PolicyFile } from '../policy/load-policies.ts';
import { ConfigError, readBrokerSettings } from '../settings.ts';
import { KeyRing } from '../tokens/key-ring.ts';
import { keywayState, stateStores, type KeywayState } from './keyway-state.ts';
import { replayGuardShards, type ReplayGuardState } from './replay-guard-state.ts';
import type { Broker } from '../broker.ts';
import type { JwksCachePolicy } from '../issuers/jwks-cache.ts';
import { Hono } from 'hono';
import type { AppEnv } from '../app.ts';
import { WorkerLivePolicies } from './live-policies.ts';

/** The bindings and vars wrangler.toml declares. */
export type WorkerEnv = {
  readonly STATE: DurableObjectNamespace<KeywayState>;
  readonly REPLAY: DurableObjectNamespace<ReplayGuardState>;
  readonly KEYWAY_ISSUER: string;
  readonly KEYWAY_ALLOW_HTTP_LOOPBACK?: string;
  readonly KEYWAY_MAX_TTL_SECONDS?: string;
  readonly KEYWAY_AUDIT_CHECKPOINT_SECONDS?: string;
  readonly KEYWAY_AUDIT_RETENTION_DAYS?: string;
  readonly KEYWAY_ALERT_RULES?: string;
  readonly KEYWAY_ALERT_BURST_THRESHOLD?: string;
  readonly KEYWAY_ALERT_BURST_WINDOW_SECONDS?: string;
  readonly KEYWAY_ALERT_NETWORK_PREFIX_V4?: string;
  readonly KEYWAY_ALERT_NETWORK_PREFIX_V6?: string;
  readonly KEYWAY_ALERT_WEBHOOK_URL?: string;
  readonly KEYWAY_ALERT_WEBHOOK_ATTEMPTS?: string;
  readonly KEYWAY_ALERT_WEBHOOK_BACKOFF_MS?: string;
  /** Secrets (`wrangler secret put`): the master key secrets at rest are sealed under, and the GitHub App. */
  readonly KEYWAY_MASTER_KEY?: string;
  readonly KEYWAY_MASTER_KEY_PREVIOUS?: string;
  readonly KEYWAY_GITHUB_APP_ID?: string;
  readonly KEYWAY_GITHUB_APP_PRIVATE_KEY?: string;
  readonly KEYWAY_GITHUB_API_URL?: string;
  readonly KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS?: string;
  readonly KEYWAY_GITHUB_WEBHOOK_SECRET?: string;
  readonly KEYWAY_GITHUB_POLICY_REPOSITORY?: string;
  readonly KEYWAY_GITHUB_POLICY_PATH?: string;
  readonly KEYWAY_GITHUB_POLICY_BRANCH?: string;
};

export interface WorkerBrokerOptions {
  readonly log: Logger;
  readonly now?: () => number;
  readonly jwksCachePolicy?: JwksCachePolicy;
}

/**
 * The broker inside a Worker isolate: policies from the bundle, keys and audit log in the
 * KeywayState Durable Object. Built once per isolate.
 */
export async function createWorkerBroker(env: WorkerEnv, policyFiles: readonly PolicyFile[], options: WorkerBrokerOptions): Promise<Broker> {
  const settings = readBrokerSettings(env);
  const loadOptions = { brokerIssuer: settings.issuer, maxTtlSeconds: settings.maxTtlSeconds, allowHttpLoopback: settings.allowHttpLoopback };
  const bundled = loadPolicies(policyFiles, loadOptions);
  const state = () => keywayState(env.STATE);
  const stores = stateStores(state);
  const now = options.now ?? Date.now;
  const keys = await KeyRing.open(stores.keys, now());
  let github: GitHubTokens | undefined;
  if (settings.github !== undefined) {
    const master = readMasterKeys(env);
    if (master === undefined) throw new ConfigError('KEYWAY_MASTER_KEY must be set (a secret) when a GitHub App is configured: tokens awaiting revocation are sealed under it');
    github = await createGitHubTokens(settings.github, {
      http: { fetch: (input, init) => fetch(input, init), timeoutMs: OUTBOUND_TIMEOUT_MS, maxBytes: OUTBOUND_MAX_BYTES, allowHttpLoopback: settings.allowHttpLoopback },
      revocations: stores.revocations,
      box: await SecretBox.fromMasterKeys(master),
      now,
      // KeywayState sets its own alarm when a revocation is scheduled or made due.
      scheduled: () => {},
    });
  }
  // With a policy repository, the set pushed to it (kept in KeywayState) serves; the bundle until the first push.
  const following = settings.githubWebhooks?.policyRepository !== undefined;
  const live = new WorkerLivePolicies(state, bundled, loadOptions, options.log, now);
  const broker = createBroker({
    ...(github === undefined ? {} : { github }),
    settings,
    policies: () => live.current,
    ...(!following
      ? {}
      : {
          health: () => ({
            ok: true,
            details: { policies: live.current.policies.length, inactive_policies: live.current.inactive.length, ...(live.lastSwitch === undefined ? {} : { policy_reload: live.lastSwitch }) },
          }),
        }),
    webhooks: { deliveries: stores.deliveries, live: live.live, loadOptions: () => loadOptions },
    keys: () => keys,
    audit: stores.audit,
    alerts: stores.alerts,
    background: (c, task) => c.executionCtx.waitUntil(task),
    replay: replayGuardShards(env.REPLAY),
    clientIp: (c) => c.req.header('cf-connecting-ip'),
    log: options.log,
    now,
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  if (!following) return broker;
  // Every request first catches up with the live set, so no isolate serves one a push replaced.
  const app = new Hono<AppEnv>();
  app.use(async (_c, next) => {
    await live.refresh();
    await next();
  });
  app.route('/', broker.app);
  return { ...broker, app };
}
