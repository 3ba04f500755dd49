// `npm run bench`: the figures of the issue, each with its target, as a table and as JSON
// (printed, and written to bench/results/latest.json). Everything on 127.0.0.1: the test
// issuer of the test suite, brokers in processes of their own with the durable audit log
// (exactly `npm start`: hash chain, writer thread, WAL with synchronous=FULL, alert rules but
// the one a token pool's laps set off: FRESH_TOKEN_ALERT_RULES), the load generator in this process. It reports what it measures and exits 0; a run that breaks
// (a broker refusing exchanges in warm-up, wrangler failing) exits 1.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BROKER_ISSUER, cpuPlan, pinSelf, startBenchBroker, startBenchIssuer, type BenchBroker } from './broker-process.ts';
import { envNumber } from './env-number.ts';
import { claimsGrantedIn } from './realistic-policies.ts';
import { cycle, runLoad, signTokenPool, warmUp, type LoadResult, type TokenSource } from './exchange-load.ts';

const SECONDS = envNumber('BENCH_SECONDS', 10);
const ROUNDS = envNumber('BENCH_ROUNDS', 3);
const RATE = envNumber('BENCH_RATE', 1000);
const RATE_SECONDS = envNumber('BENCH_RATE_SECONDS', 20);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 32);
const FLOOR_SECONDS = envNumber('BENCH_FLOOR_SECONDS', 9);
const TOKENS = envNumber('BENCH_TOKENS', 2000);
const WARM_UP = envNumber('BENCH_WARM_UP', 300);
const POLICY_SIZES = [10, envNumber('BENCH_LARGE_POLICY_SET', 10_000)] as const;
const TARGET = { floorRatio: 0.5, p99Ms: 10, policyCost: 0.1, bundleGzipBytes: 300_000 } as const;
const RESULTS = process.env['BENCH_RESULTS'] || join(import.meta.dirname, 'results', 'latest.json');

const machine = {
  cpu: cpus()[0]?.model.trim() ?? 'unknown',
  cpus: availableParallelism(),
  node: process.version,
  at: new Date().toISOString(),
  /** The machine may be shared: its load before the run says how far to trust the figures. */
  loadAverage1m: Number(loadavg()[0]?.toFixed(2)),
};
const plan = cpuPlan();
if (plan !== undefined) pinSelf(plan.driver);
console.log(`keyway bench — ${machine.cpu}, ${machine.cpus} CPUs, Node ${machine.node}, load average ${machine.loadAverage1m} before the run`);
console.log(
  plan === undefined
    ? '  one CPU: broker and load generator share it (the broker is one core by necessity)'
    : `  broker pinned to CPU ${plan.broker} (taskset: its event loop, libuv threadpool where WebCrypto runs, audit writer thread and V8 helpers all share that one core); load generator and issuer on CPU ${plan.driver}`,
);

/** The crypto floor in a process pinned to the broker's CPU (bench/crypto-floor.ts). */
function cryptoFloor(): { unitsPerSecond: number; unitsPerCpuSecond: number; byConcurrency: Record<string, number> } {
  const args = ['bench/crypto-floor.ts', 'jose', String(FLOOR_SECONDS)];
  const run = plan === undefined ? spawnSync(process.execPath, args, { encoding: 'utf8' }) : spawnSync('taskset', ['-c', String(plan.broker), process.execPath, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`crypto floor failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { unitsPerSecond: number; unitsPerCpuSecond: number; byConcurrency: Record<string, number> };
}

/** The Worker as `wrangler deploy` would upload it, built offline; source maps and wrangler's README left out. */
function workerBundle(): { files: string[]; rawBytes: number; gzipBytes: number; minified: boolean } {
  const outdir = mkdtempSync(join(tmpdir(), 'keyway-bundle-'));
  const build = spawnSync(join(import.meta.dirname, '..', 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', outdir], {
    encoding: 'utf8',
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
  });
  if (build.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${build.stdout}\n${build.stderr}`);
  const files = readdirSync(outdir).filter((file) => !file.endsWith('.map') && file !== 'README.md' && statSync(join(outdir, file)).isFile());
  const contents = files.map((file) => readFileSync(join(outdir, file)));
  return {
    files,
    rawBytes: contents.reduce((sum, content) => sum + content.length, 0),
    gzipBytes: contents.reduce((sum, content) => sum + gzipSync(content, { level: 9 }).length, 0),
    minified: /^\s*minify\s*=\s*true/m.test(readFileSync('wrangler.toml', 'utf8')),
  };
}

interface SizedBroker {
  readonly size: number;
  readonly broker: BenchBroker;
  readonly tokens: TokenSource;
  readonly runs: (LoadResult & { cpuCores: number })[];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function measuredRun(target: SizedBroker, rate?: number): Promise<LoadResult & { cpuCores: number }> {
  const cpuBefore = target.broker.cpuMs();
  const started = performance.now();
  const result = await runLoad({ url: target.broker.url, tokens: target.tokens, seconds: rate === undefined ? SECONDS : RATE_SECONDS, connections: CONNECTIONS, ...(rate === undefined ? {} : { rate }) });
  return { ...result, cpuCores: (target.broker.cpuMs() - cpuBefore) / (performance.now() - started) };
}

const floor = cryptoFloor();
console.log(`  crypto floor: ${floor.unitsPerSecond} units/s, ${floor.unitsPerCpuSecond} per CPU-second (a unit: RS256 verify + ES256 sign; units/s by jobs in flight: ${JSON.stringify(floor.byConcurrency)})`);
const bundle = workerBundle();

const { issuer, close: closeIssuer } = await startBenchIssuer();
const lifetime = 3600 + SECONDS * ROUNDS * 4 + RATE_SECONDS;
const brokers: SizedBroker[] = [];
try {
  for (const size of POLICY_SIZES) {
    const broker = await startBenchBroker({ issuer, policies: size, ...(plan === undefined ? {} : { cpu: plan.broker }) });
    brokers.push({ size, broker, tokens: cycle(await signTokenPool(issuer, BROKER_ISSUER, claimsGrantedIn(size), TOKENS, lifetime)), runs: [] });
  }
  for (const target of brokers) await warmUp(target.broker.url, target.tokens, WARM_UP);
  const jwksAfterWarmUp = await issuer.hits();

  // Interleaved rounds, so that a neighbour's load on a shared machine hits both sizes alike; best round counts.
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const target of brokers) {
      const run = await measuredRun(target);
      target.runs.push(run);
      console.log(
        `  round ${round}, ${String(target.size).padStart(5)} policies: ${run.rate.toFixed(0).padStart(5)} exchanges/s, p50 ${run.p50} ms, p99 ${run.p99} ms, broker CPU ${run.cpuCores.toFixed(2)} cores, ${run.failures} failures`,
      );
    }
  }
  const small = brokers[0] as SizedBroker;
  const fixed = await measuredRun(small, RATE);
  console.log(`  fixed rate ${RATE}/s for ${RATE_SECONDS}s, ${small.size} policies: ${fixed.rate.toFixed(0)} exchanges/s answered, p50 ${fixed.p50} ms, p99 ${fixed.p99} ms, max ${fixed.max} ms, broker CPU ${fixed.cpuCores.toFixed(2)} cores, ${fixed.failures} failures`);
  const jwksAfterRuns = await issuer.hits();

  const best = (target: SizedBroker) => target.runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  const large = brokers[1] as SizedBroker;
  const throughput = best(small);
  const ratio = throughput.rate / floor.unitsPerSecond;
  // Per second of CPU each process actually got: what one core does even when a neighbour takes part of it.
  const perCpuSecond = median(small.runs.map((run) => run.rate / run.cpuCores));
  const cpuRatio = perCpuSecond / floor.unitsPerCpuSecond;
  const policyCost = 1 - best(large).rate / throughput.rate;
  const jwksFetches = jwksAfterRuns.jwks - jwksAfterWarmUp.jwks;
  const failures = [...small.runs, ...large.runs, fixed].reduce((sum, run) => sum + run.failures, 0);
  const rateHeld = fixed.rate >= RATE * 0.98 && fixed.failures === 0;

  const verdict = (met: boolean) => (met ? 'MET' : 'MISSED');
  const targets = {
    floorRatio: {
      target: `≥ ${TARGET.floorRatio * 100}%`,
      value: cpuRatio,
      wallClockValue: ratio,
      verdict: verdict(cpuRatio >= TARGET.floorRatio),
      note: 'per CPU-second: the broker\'s exchanges per second of CPU time it used (median of the rounds) over the floor\'s units per second of CPU time; wallClockValue: best round\'s exchanges/s over the floor\'s units/s',
    },
    p99AtRate: {
      target: `p99 < ${TARGET.p99Ms} ms at ${RATE}/s`,
      value: fixed.p99,
      verdict: verdict(rateHeld && fixed.p99 < TARGET.p99Ms),
      ...(rateHeld ? {} : { note: `the broker answered ${fixed.rate.toFixed(0)}/s with ${fixed.failures} failures, not the ${RATE}/s asked` }),
    },
    policyCost: { target: `< ${TARGET.policyCost * 100}%`, value: policyCost, verdict: verdict(policyCost < TARGET.policyCost) },
    bundleGzip: { target: `< ${TARGET.bundleGzipBytes / 1000} kB gzipped`, value: bundle.gzipBytes, verdict: verdict(bundle.gzipBytes < TARGET.bundleGzipBytes) },
    jwksFetchesSteady: { target: '0 after warm-up', value: jwksFetches, verdict: verdict(jwksFetches === 0) },
  };
  const summary = {
    machine,
    setup: {
      transport: 'HTTP/1.1 on 127.0.0.1 from the bench process (a second process): autocannon for the throughput runs, evenly spaced requests for the fixed rate',
      broker: 'bench/serve-broker.ts on: exactly npm start (durable audit log, alert rules but subject_token_replayed), one process',
      brokerCpu: plan === undefined ? 'unpinned (one CPU machine)' : `pinned to CPU ${plan.broker}`,
      connections: CONNECTIONS,
      runSeconds: SECONDS,
      rounds: ROUNDS,
      rateSeconds: RATE_SECONDS,
      tokenPool: TOKENS,
      warmUpExchanges: WARM_UP,
    },
    cryptoFloor: floor,
    throughput: { policies: small.size, exchangesPerSecond: Math.round(throughput.rate), exchangesPerCpuSecond: Math.round(perCpuSecond), p50Ms: throughput.p50, p99Ms: throughput.p99, brokerCpuCores: Number(throughput.cpuCores.toFixed(2)) },
    fixedRate: { rate: RATE, seconds: RATE_SECONDS, answeredPerSecond: Math.round(fixed.rate), p50Ms: fixed.p50, p99Ms: fixed.p99, maxMs: fixed.max, brokerCpuCores: Number(fixed.cpuCores.toFixed(2)) },
    policies: Object.fromEntries(brokers.map((target) => [target.size, Math.round(best(target).rate)])),
    bundle,
    jwks: { fetchesDuringWarmUp: jwksAfterWarmUp.jwks, fetchesAfterWarmUp: jwksFetches },
    failures,
    targets,
  };

  const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
  const rows: [string, string, string, string][] = [
    ['exchange throughput (max, 1 core)', `${Math.round(throughput.rate)} /s, p50 ${throughput.p50} ms, p99 ${throughput.p99} ms`, '', ''],
    ['crypto floor (1 core)', `${floor.unitsPerSecond} verify+sign /s; ${floor.unitsPerCpuSecond} per CPU-second`, '', ''],
    ['throughput / crypto floor', `${pct(cpuRatio)} per CPU-second (${Math.round(perCpuSecond)} vs ${floor.unitsPerCpuSecond}); ${pct(ratio)} wall clock`, targets.floorRatio.target, targets.floorRatio.verdict],
    [`latency at ${RATE}/s`, `p50 ${fixed.p50} ms, p99 ${fixed.p99} ms (${Math.round(fixed.rate)}/s answered)`, targets.p99AtRate.target, targets.p99AtRate.verdict],
    [`10 vs ${large.size.toLocaleString('en')} policies`, `${summary.policies[small.size]} vs ${summary.policies[large.size]} /s: ${pct(policyCost)} cost`, targets.policyCost.target, targets.policyCost.verdict],
    ['Worker bundle', `${(bundle.rawBytes / 1024).toFixed(1)} KiB raw, ${(bundle.gzipBytes / 1024).toFixed(1)} KiB gzipped${bundle.minified ? ' (minified)' : ' (not minified)'}`, targets.bundleGzip.target, targets.bundleGzip.verdict],
    ['JWKS fetches, steady state', `${jwksFetches} (warm-up: ${jwksAfterWarmUp.jwks})`, targets.jwksFetchesSteady.target, targets.jwksFetchesSteady.verdict],
    ['failed exchanges (all runs)', String(failures), '', ''],
  ];
  const widths = [0, 1, 2, 3].map((column) => Math.max(...rows.map((row) => row[column]?.length ?? 0), ['figure', 'measured', 'target', ''][column]?.length ?? 0));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  console.log();
  console.log(line(['figure', 'measured', 'target', '']));
  console.log(line(widths.map((width) => '-'.repeat(width))));
  for (const row of rows) console.log(line(row));
  if (!rateHeld) console.log(`note: ${targets.p99AtRate.note}`);
  console.log();
  console.log(JSON.stringify(summary, null, 2));
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`written to ${RESULTS}`);
} finally {
  await Promise.all(brokers.map((target) => target.broker.stop()));
  await closeIssuer();
}
