import { createBroker } from '../create-broker.ts';
import { outboundHttp } from '../../core/outbound/outbound-http.ts';
import { createGitHubTokens } from '../../features/github/app/create-github-tokens.ts';
import type { GitHubTokens } from '../../features/github/app/github-tokens.ts';
import { openUpstreams } from '../../features/proxy/upstream-credential.ts';
import { readMasterKeys } from '../../core/secrets/master-keys.ts';
import { SecretBox } from '../../core/secrets/secret-box.ts';
import { errorText, type Logger } from '../../core/log.ts';
import { loadPolicies, type PolicyFile } from '../../core/policy/load-policies.ts';
import { policyLoadOptionsOf, readBrokerSettings } from '../../config/broker-settings.ts';
import { ConfigError, readInteger } from '../../core/settings/read-settings.ts';
import { keyLifeCycle, KEY_RING_REFRESH_SECONDS } from '../../core/mint/key-life-cycle.ts';
import { withKeyRingAge } from '../stale-key-ring.ts';
import type { KeyTransition } from '../../core/mint/key-store.ts';
import { LiveKeyRing } from '../../core/mint/live-key-ring.ts';
import { keywayState, MASTER_KEY_MISSING, stateStores, type KeywayState } from './keyway-state.ts';
import { MAX_STATE_EXPORT_BYTES } from './audit-chain-object.ts';
import { endedCiWorkShards, replayGuardShards, revocationShards, type ReplayGuardState } from './replay-guard-state.ts';
import { rateLimitShards, type RateLimitState } from './rate-limit-state.ts';
import type { Broker } from '../create-broker.ts';
import type { JwksCachePolicy } from '../../core/verify/jwks-cache.ts';
import { Hono } from 'hono';
import { notFound, type AppEnv } from '../../http/app.ts';
import { WorkerLivePolicies } from './live-policies.ts';
import { FailureBackoff, retryAfter } from '../failure-backoff.ts';
import { policyHealth } from '../../core/policy/policy-health.ts';
import type { RootCheckpoint } from '../../core/audit/root-checkpoint.ts';
import { KeyRing } from '../../core/mint/key-ring.ts';
import type { AuditShardState } from './audit-shard-state.ts';
import { openWorkerAuditLog, shardedAuditUpkeep, type WorkerAuditLog } from './worker-audit-log.ts';

/**
 * How old an isolate's key ring may be before it is served no more without a reload: one refresh period. Within it a
 * rotation the cron made, or a key withdrawn in another isolate, reaches this one.
 */
export const ISOLATE_KEY_RING_SERVED_MS = KEY_RING_REFRESH_SECONDS * 1000;

/** The bindings and vars wrangler.toml declares. */
export type WorkerEnv = {
  readonly STATE: DurableObjectNamespace<KeywayState>;
  readonly REPLAY: DurableObjectNamespace<ReplayGuardState>;
  readonly LIMITS: DurableObjectNamespace<RateLimitState>;
  readonly AUDIT: DurableObjectNamespace<AuditShardState>;
  readonly KEYWAY_AUDIT_SHARDS?: string;
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
  /** A Worker secret (`wrangler secret put KEYWAY_MASTER_KEY`): required, private signing keys are sealed under it. */
  readonly KEYWAY_MASTER_KEY?: string;
  readonly KEYWAY_MASTER_KEY_PREVIOUS?: string;
  /** A Worker secret, set only to restore an export into a fresh deployment (POST /v1/backup/restore); delete it afterwards. */
  readonly KEYWAY_RESTORE_TOKEN?: string;
  readonly KEYWAY_KEY_ROTATION_DAYS?: string;
  readonly KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE?: string;
  readonly KEYWAY_RATE_LIMIT_GLOBAL_BURST?: string;
  readonly KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE?: string;
  readonly KEYWAY_RATE_LIMIT_CLIENT_BURST?: string;
  readonly KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE?: string;
  readonly KEYWAY_RATE_LIMIT_SUBJECT_BURST?: string;
  readonly KEYWAY_GITHUB_APP_ID?: string;
  readonly KEYWAY_GITHUB_APP_PRIVATE_KEY?: string;
  readonly KEYWAY_GITHUB_API_URL?: string;
  readonly KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS?: string;
  readonly KEYWAY_GITHUB_WEBHOOK_SECRET?: string;
  readonly KEYWAY_GITHUB_POLICY_REPOSITORY?: string;
  readonly KEYWAY_GITHUB_POLICY_REPOSITORY_ID?: string;
  readonly KEYWAY_GITHUB_POLICY_PATH?: string;
  readonly KEYWAY_GITHUB_POLICY_BRANCH?: string;
  readonly KEYWAY_GITHUB_POLICY_CHECK_SECONDS?: string;
};

export interface WorkerBrokerOptions {
  readonly log: Logger;
  readonly now?: () => number;
  readonly jwksCachePolicy?: JwksCachePolicy;
}

export interface WorkerBroker extends Broker {
  /** This isolate's key ring: the entry reloads it at the start of a request once it is stale. */
  readonly keys: LiveKeyRing;
  /** The audit log's shards and its sealed legacy chain. */
  readonly audit: WorkerAuditLog;
}

/**
 * The broker inside a Worker isolate: policies from the bundle, keys in the KeywayState Durable
 * Object, the audit log in the AuditShardState objects. Built once per isolate.
 */
export async function createWorkerBroker(env: WorkerEnv, policyFiles: readonly PolicyFile[], options: WorkerBrokerOptions): Promise<WorkerBroker> {
  const settings = readBrokerSettings(env);
  const master = readMasterKeys(env);
  if (master === undefined) throw new ConfigError(MASTER_KEY_MISSING);
  const loadOptions = policyLoadOptionsOf(settings);
  const bundled = loadPolicies(policyFiles, loadOptions);
  const state = () => keywayState(env.STATE);
  const stores = stateStores(state);
  const now = options.now ?? Date.now;
  const keys = await LiveKeyRing.open(stores.keys, now());
  const audit = await openWorkerAuditLog(env, state, stores.alerts);
  const box = await SecretBox.fromMasterKeys(master);
  let github: GitHubTokens | undefined;
  if (settings.github !== undefined) {
    github = await createGitHubTokens(settings.github, {
      // Cloudflare's fetch never reaches private addresses; outboundHttp refuses them written as IP addresses.
      http: outboundHttp((input, init) => fetch(input, init), settings.allowHttpLoopback),
      revocations: stores.revocations,
      box,
      now,
      // KeywayState sets its own alarm when a revocation is scheduled or made due.
      scheduled: () => {},
      log: options.log,
    });
  }
  // With a policy repository, the set pushed to it (kept in KeywayState) serves; the bundle until the first push.
  const following = settings.githubWebhooks?.policyRepository !== undefined;
  const checkSeconds = readInteger(env, 'KEYWAY_GITHUB_POLICY_CHECK_SECONDS', 5, 0, 60);
  const live = new WorkerLivePolicies(state, bundled, loadOptions, options.log, now, checkSeconds);
  const broker = createBroker({
    ...(github === undefined ? {} : { github }),
    proxyUpstreams: await openUpstreams(settings.proxyUpstreams ?? [], box),
    settings,
    policies: () => live.current,
    health: () => withKeyRingAge(policyHealth(live.current, live.lastSwitch), keys, now(), ISOLATE_KEY_RING_SERVED_MS),
    webhooks: { deliveries: stores.deliveries, live: live.live, loadOptions: () => loadOptions },
    backup: {
      ...audit.backup,
      restoreToken: env.KEYWAY_RESTORE_TOKEN === '' ? undefined : env.KEYWAY_RESTORE_TOKEN,
      maxBytes: MAX_STATE_EXPORT_BYTES,
    },
    keys: () => keys.ring,
    keyStore: stores.keys,
    keysWithdrawn: async () => void (await keys.refresh(now())),
    audit: { sharded: audit.log, api: audit.api },
    alerts: audit.alerts,
    background: (c, task) => c.executionCtx.waitUntil(task),
    replay: replayGuardShards(env.REPLAY),
    revocations: revocationShards(env.REPLAY),
    endedCiWork: endedCiWorkShards(env.REPLAY),
    limiter: rateLimitShards(env.LIMITS),
    clientIp: (c) => c.req.header('cf-connecting-ip'),
    log: options.log,
    now,
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  const restoring = env.KEYWAY_RESTORE_TOKEN !== undefined && env.KEYWAY_RESTORE_TOKEN !== '';
  if (!following && !restoring) return { ...broker, keys, audit };
  const app = new Hono<AppEnv>();
  // A restore writes only into a fresh deployment, object by object: any other answer meanwhile (a stranger's refused
  // /token has its audit record) would leave a shard not fresh and the deployment half restored.
  if (restoring) app.use(async (c, next) => (c.req.path === RESTORE_PATH ? next() : c.json(RESTORING, 503, { 'Cache-Control': 'no-store' })));
  // A request first catches up with the live set when this isolate last checked it checkSeconds ago or more. While
  // KeywayState cannot say which set is live, nothing is decided by a set that may be stale past that bound: 503. A check
  // that failed is not asked again by every request under traffic, but once its backoff has passed.
  if (following) {
    const checks = new FailureBackoff();
    app.use(async (c, next) => {
      const arrived = now();
      if (!live.isStale(arrived)) return next();
      const checked = await checks.attempt(
        arrived,
        now,
        () => live.refreshIfStale(),
        (error, failure) =>
          options.log.error('live policy set could not be checked', { error: errorText(error), failures: failure.failures, retry_in_ms: failure.waitMs }),
      );
      return 'value' in checked ? next() : c.json(LIVE_SET_UNCHECKED, 503, { 'Cache-Control': 'no-store', 'Retry-After': retryAfter(checked.waitMs) });
    });
  }
  app.route('/', broker.app);
  app.notFound(notFound);
  return { ...broker, app, keys, audit };
}

const LIVE_SET_UNCHECKED = {
  error: 'temporarily_unavailable',
  error_description: 'which policy set is live cannot be checked right now; retry later',
} as const;
const RESTORE_PATH = '/v1/backup/restore';
const RESTORING = {
  error: 'temporarily_unavailable',
  error_description: `this deployment is being restored: while KEYWAY_RESTORE_TOKEN is set it answers only POST ${RESTORE_PATH} (delete the secret once restored)`,
} as const;

/** The Cron Trigger's round of the sharded audit log: shard checkpoints and pruning, then a root checkpoint over every chain. */
export async function scheduledAuditUpkeep(env: WorkerEnv, now: number, log: Logger): Promise<RootCheckpoint | undefined> {
  const state = () => keywayState(env.STATE);
  const stores = stateStores(state);
  const audit = await openWorkerAuditLog(env, state, stores.alerts);
  return shardedAuditUpkeep(audit, { env, keys: await KeyRing.from(await stores.keys.listKeys()), now, log });
}

/** The Cron Trigger's round of the signing key life cycle, at the trigger's scheduled time, in the state Durable Object. */
export async function scheduledKeyUpkeep(env: WorkerEnv, now: number): Promise<KeyTransition[]> {
  const settings = readBrokerSettings(env);
  const { keys } = stateStores(() => keywayState(env.STATE));
  return keys.advanceKeys({ now, cycle: keyLifeCycle(settings.keys, settings.maxTtlSeconds), rotate: false, upkeep: true });
}
