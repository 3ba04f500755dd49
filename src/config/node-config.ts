import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseProxyUpstreams, type ProxyUpstreamContext } from '../features/proxy/proxy-settings.ts';
import { isLoopbackHttpUrl } from '../core/outbound/loopback-http-url.ts';
import { readMasterKeys, type MasterKeys } from '../core/secrets/master-keys.ts';
import { readBrokerSettings, type BrokerSettings } from './broker-settings.ts';
import { ConfigError, readFlag, readInteger, type SettingsSource } from '../core/settings/read-settings.ts';
import { readTrustedProxies, type TrustedProxies } from './trusted-proxies.ts';

/** Settings of the Node broker, each from an environment variable documented in docs/operations/settings.md. */
export interface NodeBrokerConfig extends BrokerSettings {
  readonly port: number;
  readonly host: string;
  /** KEYWAY_MAX_CONNECTIONS: open client connections one process holds at most; beyond it new ones are closed at once. */
  readonly maxConnections: number;
  readonly policiesDir: string;
  readonly dataDir: string;
  /** KEYWAY_DEV=1: serve the development issuer. Never in production. */
  readonly dev: boolean;
  /** KEYWAY_WATCH_POLICIES (default 1): reload the policy directory when a file in it changes. */
  readonly watchPolicies: boolean;
  /** KEYWAY_POLICY_OWNERS: the users (uids) trusted to own the policy files and directories, besides root and the broker's own. */
  readonly policyOwners: readonly number[];
  /** KEYWAY_MASTER_KEY (and _PREVIOUS); absent: the master key file in the data dir (src/storage/master-key-file.ts). */
  readonly masterKeys?: MasterKeys;
  /** KEYWAY_METRICS_TOKEN: the bearer token GET /metrics requires; without it, /metrics is for loopback callers only. */
  readonly metricsToken?: string;
  /** KEYWAY_TRUSTED_PROXIES, KEYWAY_TRUSTED_PROXY_HEADER: whose forwarding header names the client; none by default. */
  readonly trustedProxies?: TrustedProxies;
  readonly shutdown: ShutdownSettings;
}

/**
 * Each client's connection stays open for Node's 5 s keep-alive after its answer, so 1,000 new
 * runners a second hold about 5,000; twice that leaves room for bursts.
 */
const DEFAULT_MAX_CONNECTIONS = 10_000;

/** How SIGTERM ends the Node broker (src/runtimes/node/graceful-shutdown.ts). */
export interface ShutdownSettings {
  /** KEYWAY_SHUTDOWN_SECONDS: the whole shutdown, drain included, before the process exits non-zero anyway. */
  readonly seconds: number;
  /** KEYWAY_SHUTDOWN_DRAIN_SECONDS: how long `/readyz` says not ready while the listener still serves, for load balancers that poll it. */
  readonly drainSeconds: number;
}

/** Below Kubernetes' default grace period of 30 s, so the broker's own deadline, with its log line, comes before SIGKILL. */
export const DEFAULT_SHUTDOWN_SECONDS = 25;

export function readShutdownSettings(env: SettingsSource): ShutdownSettings {
  const seconds = readInteger(env, 'KEYWAY_SHUTDOWN_SECONDS', DEFAULT_SHUTDOWN_SECONDS, 1, 3600);
  const drainSeconds = readInteger(env, 'KEYWAY_SHUTDOWN_DRAIN_SECONDS', 0, 0, 3600);
  if (drainSeconds >= seconds) {
    throw new ConfigError(
      `KEYWAY_SHUTDOWN_DRAIN_SECONDS (${drainSeconds}) must be less than KEYWAY_SHUTDOWN_SECONDS (${seconds}): the drain is part of the shutdown`,
    );
  }
  return { seconds, drainSeconds };
}

/** KEYWAY_PROXY_UPSTREAMS_FILE: the upstream declarations in a file (Node only), instead of KEYWAY_PROXY_UPSTREAMS's text. */
function proxyUpstreamsFile(env: SettingsSource, cwd: string, context: ProxyUpstreamContext): Pick<NodeBrokerConfig, 'proxyUpstreams'> {
  const file = env['KEYWAY_PROXY_UPSTREAMS_FILE'];
  if (typeof file !== 'string' || file === '') return {};
  if (typeof env['KEYWAY_PROXY_UPSTREAMS'] === 'string' && env['KEYWAY_PROXY_UPSTREAMS'] !== '') {
    throw new ConfigError('set KEYWAY_PROXY_UPSTREAMS or KEYWAY_PROXY_UPSTREAMS_FILE, not both');
  }
  let text: string;
  try {
    text = readFileSync(resolve(cwd, file), 'utf8');
  } catch (error) {
    throw new ConfigError(`KEYWAY_PROXY_UPSTREAMS_FILE ${file} cannot be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  return { proxyUpstreams: parseProxyUpstreams(text, context) };
}

export function nodeConfigFromEnv(env: SettingsSource, cwd: string = process.cwd()): NodeBrokerConfig {
  const port = readInteger(env, 'PORT', 8787, 0, 65535);
  const settings = readBrokerSettings(env, `http://127.0.0.1:${port}`);
  const dev = readFlag(env, 'KEYWAY_DEV');
  if (dev && !isLoopbackHttpUrl(new URL(settings.issuer))) {
    throw new ConfigError('KEYWAY_DEV=1 only runs with a loopback http KEYWAY_ISSUER: the development issuer must never be reachable in production');
  }
  const text = (name: string, fallback: string): string => {
    const value = env[name];
    return typeof value === 'string' && value !== '' ? value : fallback;
  };
  const metricsToken = text('KEYWAY_METRICS_TOKEN', '');
  if (metricsToken !== '' && !/^[\x21-\x7e]{32,}$/.test(metricsToken)) {
    throw new ConfigError('KEYWAY_METRICS_TOKEN must be at least 32 printable characters without spaces (e.g. openssl rand -hex 32)');
  }
  return {
    ...settings,
    ...(metricsToken === '' ? {} : { metricsToken }),
    trustedProxies: readTrustedProxies(env),
    port,
    host: text('KEYWAY_HOST', '127.0.0.1'),
    maxConnections: readInteger(env, 'KEYWAY_MAX_CONNECTIONS', DEFAULT_MAX_CONNECTIONS, 1, 1_000_000),
    policiesDir: resolve(cwd, text('KEYWAY_POLICIES', 'policies')),
    dataDir: resolve(cwd, text('KEYWAY_DATA_DIR', '.keyway')),
    // The dev issuer is itself an http loopback issuer.
    allowHttpLoopback: dev || settings.allowHttpLoopback,
    dev,
    watchPolicies: env['KEYWAY_WATCH_POLICIES'] === undefined || env['KEYWAY_WATCH_POLICIES'] === '' ? true : readFlag(env, 'KEYWAY_WATCH_POLICIES'),
    policyOwners: readPolicyOwners(env),
    ...masterKeysOf(env),
    ...proxyUpstreamsFile(env, cwd, {
      issuer: settings.issuer,
      allowHttpLoopback: dev || settings.allowHttpLoopback,
      githubApp: settings.github !== undefined,
    }),
    shutdown: readShutdownSettings(env),
  };
}

/** The largest uid: 2^32 - 1 is (uid_t)-1, "no user". */
const MAX_UID = 4_294_967_294;

/** KEYWAY_POLICY_OWNERS: comma-separated uids, numbers since the broker does not look names up. */
function readPolicyOwners(env: SettingsSource): number[] {
  const value = env['KEYWAY_POLICY_OWNERS'];
  if (value === undefined || value === '') return [];
  return String(value)
    .split(',')
    .map((part) => {
      const uid = /^\s*\d{1,10}\s*$/.test(part) ? Number(part) : Number.NaN;
      if (!(uid <= MAX_UID)) throw new ConfigError(`KEYWAY_POLICY_OWNERS must be uids (\`id -u NAME\`) separated by commas, not ${JSON.stringify(part)}`);
      return uid;
    });
}

function masterKeysOf(env: SettingsSource): { masterKeys?: MasterKeys } {
  const masterKeys = readMasterKeys(env);
  return masterKeys === undefined ? {} : { masterKeys };
}
