// A broker in a process of its own (bench/serve-broker.ts), for the benchmarks and the soak:
// started with given settings, optionally pinned to one CPU, its CPU time and memory readable
// from outside while it serves. Also the hand-rolled baseline of npm run bench
// (bench/baseline-broker.ts), started and pinned the same way.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestIssuerServer } from '../test/support/test-issuer-server.ts';
import { TestIssuer } from '../test/support/test-issuer.ts';
import { ALERT_RULES } from '../src/features/alerts/alert.ts';
import { realisticPolicyFiles } from './realistic-policies.ts';

export interface BrokerProcessOptions {
  /** `on`: exactly `npm start` (durable audit log, alert rules as configured); `off`: an audit store that keeps nothing. */
  readonly audit: 'on' | 'off';
  /** KEYWAY_* settings and PORT. */
  readonly env: Readonly<Record<string, string>>;
  /** Pin the whole process (event loop, libuv threadpool, audit writer, V8 helpers, and the processes it starts) to these CPUs with taskset: one, or a list (`0-1`). */
  readonly cpu?: number | string;
  /** The checkout whose bench/serve-broker.ts (and so whose src/) runs; this one by default (npm run bench:ab runs others). */
  readonly checkout?: string;
}

/** A server of the benchmarks in a process of its own. */
export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  /** User + system CPU time of every thread of the process and of the processes it started so far, in milliseconds (from /proc). */
  cpuMs(): number;
  /** SIGTERM, then waits for the exit (the `on` broker closes its audit log first). */
  stop(): Promise<void>;
}

export interface BrokerProcess extends ServerProcess {
  /** The broker's own process.memoryUsage() right after a full garbage collection, asked over IPC. */
  memory(): Promise<NodeJS.MemoryUsage>;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** With two or more CPUs: the broker gets the last one, the load generator the others. */
export function cpuPlan(): { broker: number; driver: string } | undefined {
  const cpus = availableParallelism();
  if (cpus < 2) return undefined;
  return { broker: cpus - 1, driver: `0-${cpus - 2}` };
}

/** Pins every thread of this process to `cpus` (a taskset list). */
export function pinSelf(cpus: string): void {
  const result = spawnSync('taskset', ['-a', '-cp', cpus, String(process.pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset could not pin the load generator: ${result.stderr}`);
}

/** CPU time so far of each thread of `pid`, by thread name and id (the event loop is the thread whose id is the pid), in milliseconds, from /proc. */
export function threadCpuMs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = Number(tid) === pid ? 'event loop' : `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))} ${tid}`;
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      byName.set(name, ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND);
    } catch {
      // A thread that ended between listing and reading.
    }
  }
  return byName;
}

/** CPU time so far of process `pid` and every process below it (KEYWAY_PROCESSES' brokers), in milliseconds, from /proc. */
export function processTreeCpuMs(pid: number): number {
  const processes = new Map<number, { parent: number; ms: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      processes.set(Number(entry), { parent: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND });
    } catch {
      // A process that ended between listing and reading.
    }
  }
  const below = (parent: number): number =>
    [...processes].reduce((sum, [child, { parent: itsParent }]) => (itsParent === parent ? sum + (processes.get(child)?.ms ?? 0) + below(child) : sum), 0);
  return (processes.get(pid)?.ms ?? 0) + below(pid);
}

/** Runs `node <args>` (pinned to `cpu` with taskset when given), resolving once it prints the URL it listens on. */
async function startServerProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  cpu?: number | string,
  cwd?: string,
): Promise<{ server: ServerProcess; child: ChildProcess }> {
  const [command, argv] = cpu === undefined ? [process.execPath, args] : ['taskset', ['-c', String(cpu), process.execPath, ...args]];
  const child: ChildProcess = spawn(command, argv, {
    ...(cwd === undefined ? {} : { cwd }),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code} before listening`)));
  });
  const pid = child.pid as number;
  const server = {
    url,
    pid,
    cpuMs: () => processTreeCpuMs(pid),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
  return { server, child };
}

export async function startBrokerProcess(options: BrokerProcessOptions): Promise<BrokerProcess> {
  // --expose-gc: memory() reports what survives a full collection. Nothing else calls gc().
  const { server, child } = await startServerProcess(['--expose-gc', 'bench/serve-broker.ts', options.audit], options.env, options.cpu, options.checkout);
  return {
    ...server,
    memory: () =>
      new Promise((resolve) => {
        child.once('message', (message) => resolve((message as { memory: NodeJS.MemoryUsage }).memory));
        child.send('memory');
      }),
  };
}

/** The broker's KEYWAY_ISSUER: only a name in tokens (`iss`, the subject tokens' `aud`); nothing is sent there. */
export const BROKER_ISSUER = 'https://keyway.example.com';

/** The test issuer of the test suite on 127.0.0.1, at a GitHub Enterprise Server-shaped path. */
export async function startBenchIssuer(): Promise<{ issuer: TestIssuer; close(): Promise<void> }> {
  const server = await startTestIssuerServer();
  return { issuer: new TestIssuer(server.base, '_services/token'), close: () => server.close() };
}

/**
 * Every alert rule but `subject_token_replayed`, for the soak and bench:audit. Their token pool
 * is exchanged round and round, and that rule would raise, and store, an alert for every lap:
 * work a CI job's token, presented once, never causes. With it off, the default rules cost what
 * they cost on fresh tokens. (npm run bench sends each token once, and runs every rule.)
 */
export const FRESH_TOKEN_ALERT_RULES = ALERT_RULES.filter((rule) => rule !== 'subject_token_replayed').join(',');

export interface BenchBroker extends BrokerProcess {
  readonly dataDir: string;
}

/**
 * A broker trusting `issuer` through `policies` realistic policies (bench/realistic-policies.ts),
 * with a fresh data directory under a temp dir, the alert rules of FRESH_TOKEN_ALERT_RULES (unless `env` says) and no
 * policy directory watcher. Issuer-level `max_token_age: 24h` lets a token pool serve a long soak.
 */
export async function startBenchBroker(options: {
  issuer: TestIssuer;
  policies: number;
  audit?: 'on' | 'off';
  cpu?: number | string;
  env?: Readonly<Record<string, string>>;
  checkout?: string;
}): Promise<BenchBroker> {
  const root = mkdtempSync(join(tmpdir(), 'keyway-bench-'));
  const policiesDir = join(root, 'policies');
  for (const file of realisticPolicyFiles(options.policies, `{ kind: github, url: "${options.issuer.url}", max_token_age: 24h }`)) {
    mkdirSync(dirname(join(policiesDir, file.path)), { recursive: true });
    writeFileSync(join(policiesDir, file.path), file.text);
  }
  const dataDir = join(root, 'data');
  const broker = await startBrokerProcess({
    audit: options.audit ?? 'on',
    ...(options.cpu === undefined ? {} : { cpu: options.cpu }),
    ...(options.checkout === undefined ? {} : { checkout: options.checkout }),
    env: {
      PORT: '0',
      KEYWAY_ISSUER: BROKER_ISSUER,
      KEYWAY_POLICIES: policiesDir,
      KEYWAY_DATA_DIR: dataDir,
      KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
      KEYWAY_WATCH_POLICIES: '0',
      KEYWAY_ALERT_RULES: FRESH_TOKEN_ALERT_RULES,
      // The bench measures the exchange, not the rate limits: one identity from one address would be held to them.
      KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '0',
      KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '0',
      KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '0',
      ...options.env,
    },
  });
  return { ...broker, dataDir };
}

export interface BaselineBroker extends ServerProcess {
  /** Its decision log: one JSON line per request. */
  readonly logFile: string;
}

/** The environment of a one-rule server (bench/one-rule-settings.ts): trusting `issuer`, granting exactly the tokens of `claims` (their repository and ref). */
function oneRuleEnv(options: { issuer: TestIssuer; claims: Record<string, unknown> }): Record<string, string> {
  return {
    PORT: '0',
    RULE_ISSUER: options.issuer.url,
    RULE_AUDIENCE: BROKER_ISSUER,
    RULE_REPOSITORY: String(options.claims['repository']),
    RULE_REF: String(options.claims['ref']),
  };
}

/**
 * The hand-rolled baseline (bench/baseline-broker.ts) trusting `issuer`, with its one rule
 * granting exactly the tokens of `claims` (their repository and ref), its log file in a fresh
 * temp dir. Pinned like startBenchBroker when `cpu` is given; `processes` copies of it under
 * node:cluster (bench/baseline-processes.ts) when more than one.
 */
export async function startBaselineBroker(options: {
  issuer: TestIssuer;
  claims: Record<string, unknown>;
  cpu?: number | string;
  processes?: number;
}): Promise<BaselineBroker> {
  const logFile = join(mkdtempSync(join(tmpdir(), 'keyway-bench-baseline-')), 'decisions.log');
  const processes = options.processes ?? 1;
  const { server } = await startServerProcess(
    [processes > 1 ? 'bench/baseline-processes.ts' : 'bench/baseline-broker.ts'],
    { ...oneRuleEnv(options), BASELINE_LOG: logFile, BASELINE_PROCESSES: String(processes) },
    options.cpu,
  );
  return { ...server, logFile };
}

export interface HttpFloorBroker extends ServerProcess {
  /** What it granted, from the file it writes when stopped. */
  granted(): { exchanges: number; distinctTokens: number };
}

/**
 * The HTTP + crypto floor (bench/http-floor-broker.ts) trusting `issuer`, granting exactly the tokens of
 * `claims` (their repository and ref), pinned like startBenchBroker when `cpu` is given.
 */
export async function startHttpFloorBroker(options: { issuer: TestIssuer; claims: Record<string, unknown>; cpu?: number }): Promise<HttpFloorBroker> {
  const grants = join(mkdtempSync(join(tmpdir(), 'keyway-bench-floor-')), 'granted.json');
  const { server } = await startServerProcess(['bench/http-floor-broker.ts'], { ...oneRuleEnv(options), FLOOR_GRANTS: grants }, options.cpu);
  return { ...server, granted: () => JSON.parse(readFileSync(grants, 'utf8')) as { exchanges: number; distinctTokens: number } };
}
