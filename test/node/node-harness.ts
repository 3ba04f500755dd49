import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readAlertSettings } from '../../src/features/alerts/alert-settings.ts';
import { readAuditSettings } from '../../src/core/audit/audit-settings.ts';
import { readLimitSettings } from '../../src/core/limits/limit-settings.ts';
import { readRepositoryPolicySettings } from '../../src/features/github/repository-policies/repository-policy-settings.ts';
import { silentLogger } from '../../src/core/log.ts';
import { readKeySettings } from '../../src/core/mint/key-life-cycle.ts';
import { readShutdownSettings, type NodeBrokerConfig } from '../../src/config/node-config.ts';
import { readTrustedProxies } from '../../src/config/trusted-proxies.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import type { StartBroker } from '../suites/exchange-suite.ts';

export const BROKER_ISSUER = 'https://keyway.test';

/** An issuer on port 0: the broker binds a free port and its issuer is its own loopback URL (`broker.config.issuer`). */
export const OWN_URL_ISSUER = 'http://127.0.0.1:0';

export const REPOSITORY_ROOT = new URL('../..', import.meta.url).pathname;

/** A process environment as tests build it. */
export type Environment = Record<string, string | undefined>;

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a process to its end with exactly `env` (nothing inherited unless passed), capturing its output in memory. */
export function runProcess(file: string, args: readonly string[], options: { env: Environment; cwd?: string; stdin?: string }): Promise<ProcessResult> {
  const child = spawn(file, args, { cwd: options.cwd ?? REPOSITORY_ROOT, env: options.env as NodeJS.ProcessEnv });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the keyway CLI (src/cli/main.ts) to its end, with this process's environment and `env` over it. */
export function runKeyway(args: readonly string[], env: Environment = {}): Promise<ProcessResult> {
  return runProcess(process.execPath, ['src/cli/main.ts', ...args], { env: { ...process.env, ...env } });
}

/** A broker started as `npm start` does, on PORT=0. */
export interface BrokerProcess {
  readonly url: string;
  readonly issuer: string;
  readonly child: ChildProcess;
  /** Everything it wrote so far, stdout and stderr together. */
  output(): string;
  /** Resolves with the exit code (or the signal that ended it) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
}

/** `node src/runtimes/node/main.ts` with `env` over this process's environment: resolves on its `keyway listening` line, which names the port bound. */
export async function spawnBroker(env: Environment, onSpawn: (child: ChildProcess) => void): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ['src/runtimes/node/main.ts'], { cwd: REPOSITORY_ROOT, env: { ...process.env, PORT: '0', ...env } });
  onSpawn(child);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const deadline = Date.now() + 15_000;
  for (;;) {
    // Whole lines only: the last one may still be arriving.
    const listening = output
      .split('\n')
      .slice(0, -1)
      .find((line) => line.includes('"keyway listening"'));
    if (listening !== undefined) {
      const { url, issuer } = JSON.parse(listening) as { url: string; issuer: string };
      return { url, issuer, child, output: () => output, exited };
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`broker did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes `files` (path → text) under a new temp directory and returns it. */
export function writeTree(files: Readonly<Record<string, string>>, root = mkdtempSync(join(tmpdir(), 'keyway-'))): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

export function testConfig(root: string, overrides: Partial<NodeBrokerConfig> = {}): NodeBrokerConfig {
  return {
    port: 0,
    host: '127.0.0.1',
    maxConnections: 10_000,
    issuer: BROKER_ISSUER,
    policiesDir: join(root, 'policies'),
    dataDir: join(root, 'data'),
    allowHttpLoopback: true,
    dev: false,
    watchPolicies: false,
    policyOwners: [],
    maxTtlSeconds: 3600,
    audit: readAuditSettings({}),
    alerts: readAlertSettings({}, true),
    keys: readKeySettings({}),
    limits: readLimitSettings({}),
    repositoryPolicies: readRepositoryPolicySettings({}),
    shutdown: readShutdownSettings({}),
    ...overrides,
  };
}

/** The real Node broker over real HTTP on 127.0.0.1, its audit log read back from the SQLite file. */
export const startNodeHarness: StartBroker = async (policies, options = {}) => {
  const root = writeTree(Object.fromEntries(Object.entries(policies).map(([path, text]) => [`policies/${path}`, text])));
  const { github, githubWebhooks, limits, maxTtlSeconds, repositoryPolicies, allowHttpLoopback, dpopNonces, proxyUpstreams } = readBrokerSettings({
    ...options.settings,
    KEYWAY_ISSUER: BROKER_ISSUER,
  });
  const config = testConfig(root, {
    limits,
    maxTtlSeconds,
    repositoryPolicies,
    dpopNonces,
    ...(proxyUpstreams === undefined ? {} : { proxyUpstreams }),
    ...masterKeysFrom(options.settings ?? {}),
    trustedProxies: readTrustedProxies({ ...options.settings }),
    ...(github === undefined ? {} : { github }),
    ...(githubWebhooks === undefined ? {} : { githubWebhooks }),
    // Tests run with loopback http allowed unless they turn it off.
    ...(options.settings?.['KEYWAY_ALLOW_HTTP_LOOPBACK'] === undefined ? {} : { allowHttpLoopback }),
  });
  const broker = await startNodeBroker(config, {
    log: options.log ?? silentLogger,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  const reader = openSqliteFile(join(config.dataDir, DATABASE_FILE));
  const audit = new SqliteAuditStore(reader);
  // Single-use claims and revoked tokens share one table on Node.
  const replayClaimsDown = (down: boolean) =>
    reader.exec(down ? 'ALTER TABLE replay_claims RENAME TO replay_claims_away' : 'ALTER TABLE replay_claims_away RENAME TO replay_claims');
  return {
    issuer: config.issuer,
    url: broker.url,
    request: (path, init) => fetch(`${broker.url}${path}`, init),
    auditEvent: (id) => audit.get(id),
    recentAuditEvents: async () => (await audit.query({ limit: 50, order: 'desc' })).records.map((record) => record.event),
    auditUpkeep: () => broker.auditUpkeep(),
    setReplayGuardDown: async (down) => replayClaimsDown(down),
    setRevocationListDown: async (down) => replayClaimsDown(down),
    revokeDueGitHubTokens: () => broker.revokeDueGitHubTokens(),
    tamper: async (sql, params) => void reader.run(sql, params),
    close: async () => {
      reader.close();
      await broker.close();
    },
  };
};

/** KEYWAY_MASTER_KEY among a test's settings: the broker seals under it rather than its data dir's key file. */
function masterKeysFrom(settings: Readonly<Record<string, string>>): Partial<NodeBrokerConfig> {
  const masterKeys = readMasterKeys(settings);
  return masterKeys === undefined ? {} : { masterKeys };
}
