// A broker in a process of its own (bench/serve-broker.ts), for the benchmarks and the soak:
// started with given settings, optionally pinned to one CPU, its CPU time and memory readable
// from outside while it serves.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestIssuerServer } from '../test/support/test-issuer-server.ts';
import { TestIssuer } from '../test/support/test-issuer.ts';
import { ALERT_RULES } from '../src/alerts/alert.ts';
import { realisticPolicyFiles } from './realistic-policies.ts';

export interface BrokerProcessOptions {
  /** `on`: exactly `npm start` (durable audit log, alert rules as configured); `off`: an audit store that keeps nothing. */
  readonly audit: 'on' | 'off';
  /** KEYWAY_* settings and PORT. */
  readonly env: Readonly<Record<string, string>>;
  /** Pin the whole process (event loop, libuv threadpool, audit writer, V8 helpers) to this CPU with taskset. */
  readonly cpu?: number;
}

export interface BrokerProcess {
  readonly url: string;
  readonly pid: number;
  /** User + system CPU time of every thread of the process so far, in milliseconds (from /proc). */
  cpuMs(): number;
  /** The broker's own process.memoryUsage() right after a full garbage collection, asked over IPC. */
  memory(): Promise<NodeJS.MemoryUsage>;
  /** SIGTERM, then waits for the exit (the `on` broker closes its audit log first). */
  stop(): Promise<void>;
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

export async function startBrokerProcess(options: BrokerProcessOptions): Promise<BrokerProcess> {
  // --expose-gc: memory() reports what survives a full collection. Nothing else calls gc().
  const args = ['--expose-gc', 'bench/serve-broker.ts', options.audit];
  const [command, argv] = options.cpu === undefined ? [process.execPath, args] : ['taskset', ['-c', String(options.cpu), process.execPath, ...args]];
  const child: ChildProcess = spawn(command, argv, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the broker exited with ${code} before listening`)));
  });
  const pid = child.pid as number;
  return {
    url,
    pid,
    cpuMs: () => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
    },
    memory: () =>
      new Promise((resolve) => {
        child.once('message', (message) => resolve((message as { memory: NodeJS.MemoryUsage }).memory));
        child.send('memory');
      }),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
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
 * Every alert rule but `subject_token_replayed`. A token pool is exchanged round and round
 * (signing a fresh RS256 token per exchange would cost the load generator as much as the broker),
 * and that rule would raise, and store, an alert for every lap: work a CI job's token, presented
 * once, never causes. With it off, the default rules cost what they cost on fresh tokens.
 */
export const FRESH_TOKEN_ALERT_RULES = ALERT_RULES.filter((rule) => rule !== 'subject_token_replayed').join(',');

export interface BenchBroker extends BrokerProcess {
  readonly dataDir: string;
}

/**
 * A broker trusting `issuer` through `policies` realistic policies (bench/realistic-policies.ts),
 * with a fresh data directory under a temp dir, the alert rules of FRESH_TOKEN_ALERT_RULES and no
 * policy directory watcher. Issuer-level `max_token_age: 24h` lets a token pool serve a long soak.
 */
export async function startBenchBroker(options: { issuer: TestIssuer; policies: number; audit?: 'on' | 'off'; cpu?: number; env?: Readonly<Record<string, string>> }): Promise<BenchBroker> {
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
