// `npm run bench`: the figures of the issue, each with its target, as a table and as JSON
// (printed, and written to bench/results/latest.json). Everything on 127.0.0.1: the test
// issuer of the test suite; keyway's brokers in processes of their own with the durable audit
// log (exactly `npm start`: hash chain, writer thread, WAL with synchronous=FULL, every alert
// rule), on one core and, with KEYWAY_PROCESSES, on every core; beside them, in the same rounds, the hand-rolled express + jsonwebtoken + jwks-rsa
// baseline (bench/baseline-broker.ts; on every core too, bench/baseline-processes.ts) and the HTTP + crypto floor (bench/http-floor-broker.ts: Hono on
// @hono/node-server with only the two signatures and the claims checks); both crypto floors
// (bench/crypto-floor.ts: jose, and node:crypto alone); the load generator in this process. It reports what it measures and
// exits 0; a run that breaks (a broker refusing exchanges in warm-up, wrangler failing) exits 1.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import {
  BROKER_ISSUER,
  cpuPlan,
  pinSelf,
  startBaselineBroker,
  startBenchBroker,
  startBenchIssuer,
  startHttpFloorBroker,
  type ServerProcess,
} from './broker-process.ts';
import { brokerTimings, shareOver } from './broker-timings.ts';
import { envNumber } from './env-number.ts';
import { claimsGrantedIn } from './realistic-policies.ts';
import { firstTokens, percentile, runLoad, TokenSupply, warmUp, type LoadResult, type TokenReader } from './exchange-load.ts';

const SECONDS = envNumber('BENCH_SECONDS', 10);
const ROUNDS = envNumber('BENCH_ROUNDS', 3);
const RATE = envNumber('BENCH_RATE', 1000);
const RATE_SECONDS = envNumber('BENCH_RATE_SECONDS', 20);
/**
 * Seconds at the fixed rate before the measured ones, reported and not counted. After the rounds
 * as fast as the broker answers, its first second or two at a steady rate are slow (on its one
 * core, V8's helper threads took most of the CPU for the first few hundred milliseconds): a
 * transition, not the steady state the target is about. 0 measures from the first request, as
 * runs before 2026-12-04 did; the p99 taken over both is printed too.
 */
const RATE_WARM_UP_SECONDS = envNumber('BENCH_RATE_WARM_UP_SECONDS', 3, { zero: true });
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 32);
const FLOOR_SECONDS = envNumber('BENCH_FLOOR_SECONDS', 9);
const WARM_UP = envNumber('BENCH_WARM_UP', 300);
const POLICY_SIZES = [10, envNumber('BENCH_LARGE_POLICY_SET', 10_000)] as const;
const TARGET = {
  baseline: 2,
  baselineGoal: 3,
  nodeFloor: 0.25,
  nodeFloorGoal: 0.5,
  joseFloor: 0.5,
  p99Ms: 10,
  /** 1 → 2 cores ≥ 1.7×: each added core brings at least 70% of the first one's throughput. */
  addedCoreShare: 0.7,
  policyCost: 0.1,
  bundleGzipBytes: 300_000,
} as const;
/** Tokens signed ahead of an as-fast-as-possible run: this many times what the broker's best round so far (at least BENCH_RATE) would use. */
const TOKEN_HEADROOM = 1.5;
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

interface CryptoFloor {
  readonly unitsPerSecond: number;
  readonly unitsPerCpuSecond: number;
  readonly byConcurrency: Record<string, number>;
}

/** A crypto floor (bench/crypto-floor.ts) in a process pinned to the broker's CPU. */
function cryptoFloor(engine: 'jose' | 'node-crypto'): CryptoFloor {
  const args = ['bench/crypto-floor.ts', engine, String(FLOOR_SECONDS)];
  const run =
    plan === undefined
      ? spawnSync(process.execPath, args, { encoding: 'utf8' })
      : spawnSync('taskset', ['-c', String(plan.broker), process.execPath, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${engine} crypto floor failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as CryptoFloor;
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

/** A run, with the CPU the server used (every process and thread of it) and the bench process's own (load generator and issuer), in cores. */
type Run = LoadResult & { readonly cpuCores: number; readonly loadGeneratorCores: number };
/** keyway over a point of comparison: per CPU-second (decides MET/MISSED) and wall clock (best rounds). */
type Ratio = { readonly perCpuSecond: number; readonly wallClock: number };

/** A server under load: one of keyway's brokers or the baseline, each reading its own tokens. */
interface Target {
  readonly label: string;
  readonly server: ServerProcess;
  readonly tokens: TokenReader;
  readonly runs: Run[];
  /** From the server's own records once it has stopped: exchanges granted, and how many distinct subject tokens they had. */
  granted(): { exchanges: number; distinctTokens: number };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const best = (target: Target) => target.runs.reduce<Run | undefined>((a, b) => (a === undefined || b.rate > a.rate ? b : a), undefined);
/** Exchanges per second of the CPU time the server used, median of the rounds: what one core does even when a neighbour takes part of it. */
const perCpuSecond = (target: Target) => median(target.runs.map((run) => run.rate / run.cpuCores));

async function measuredRun(target: Target, rate?: number, seconds: number = rate === undefined ? SECONDS : RATE_SECONDS): Promise<Run> {
  // Tokens for the whole run are signed before it starts, never during it (see TokenSupply).
  const expected =
    rate === undefined ? Math.ceil(TOKEN_HEADROOM * seconds * Math.max(RATE, best(target)?.rate ?? 0)) + CONNECTIONS : Math.round(rate * seconds);
  await target.tokens.reserve(expected);
  const cpuBefore = target.server.cpuMs();
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  const result = await runLoad({ url: target.server.url, tokens: target.tokens, seconds, connections: CONNECTIONS, ...(rate === undefined ? {} : { rate }) });
  const elapsed = performance.now() - started;
  const own = process.cpuUsage(ownBefore);
  return { ...result, cpuCores: (target.server.cpuMs() - cpuBefore) / elapsed, loadGeneratorCores: (own.user + own.system) / 1000 / elapsed };
}

const runLine = (run: Run) =>
  `${run.rate.toFixed(0).padStart(5)} exchanges/s, p50 ${run.p50} ms, p99 ${run.p99} ms, CPU ${run.cpuCores.toFixed(2)} cores, ${run.failures} failures`;

const nodeFloor = cryptoFloor('node-crypto');
const perCpu = (units: CryptoFloor) => `${units.unitsPerSecond} units/s, ${units.unitsPerCpuSecond} per CPU-second`;
console.log(`  node:crypto floor: ${perCpu(nodeFloor)} (a unit: RS256 verify + ES256 sign, synchronous, one thread)`);
const floor = cryptoFloor('jose');
console.log(`  jose floor: ${perCpu(floor)} (units/s by jobs in flight: ${JSON.stringify(floor.byConcurrency)})`);
const bundle = workerBundle();

const { issuer, close: closeIssuer } = await startBenchIssuer();
const lifetime = 3600 + SECONDS * ROUNDS * 6 + RATE_WARM_UP_SECONDS + RATE_SECONDS;
const supplies = POLICY_SIZES.map((size) => new TokenSupply(issuer, BROKER_ISSUER, claimsGrantedIn(size), lifetime));
const servers: ServerProcess[] = [];
const cpu = plan === undefined ? {} : { cpu: plan.broker };
/** Grants in a keyway broker's audit log, and how many distinct subject tokens they had. */
const grantedIn = (dataDir: string) => () => {
  const db = new Database(join(dataDir, 'keyway.db'), { readonly: true });
  const use = db.prepare("SELECT count(*) AS exchanges, count(DISTINCT subject_sha256) AS distinctTokens FROM audit_events WHERE decision = 'granted'");
  const counts = use.get() as { exchanges: number; distinctTokens: number };
  db.close();
  return counts;
};
try {
  const keyway: Target[] = [];
  for (const [index, size] of POLICY_SIZES.entries()) {
    // Every alert rule, as npm start runs them: no token comes twice, so subject_token_replayed costs what it costs on real traffic.
    const server = await startBenchBroker({ issuer, policies: size, ...cpu, env: { KEYWAY_ALERT_RULES: 'all' } });
    servers.push(server);
    keyway.push({
      label: `keyway, ${size.toLocaleString('en')} policies`,
      server,
      tokens: (supplies[index] as TokenSupply).reader(),
      runs: [],
      granted: grantedIn(server.dataDir),
    });
  }
  // Every core: KEYWAY_PROCESSES broker processes (one per CPU) on one data directory, the whole machine theirs to use, the load generator's CPU included.
  let allCores: Target | undefined;
  if (plan !== undefined) {
    const env = { KEYWAY_ALERT_RULES: 'all', KEYWAY_PROCESSES: String(machine.cpus) };
    const server = await startBenchBroker({ issuer, policies: POLICY_SIZES[0], cpu: `0-${machine.cpus - 1}`, env });
    servers.push(server);
    allCores = {
      label: `keyway, ${machine.cpus} processes`,
      server,
      tokens: (supplies[0] as TokenSupply).reader(),
      runs: [],
      granted: grantedIn(server.dataDir),
    };
  }
  // Granting exactly what keyway's 10-policy broker grants, it shares that broker's tokens: no cache spans two processes.
  const baselineTarget = async (label: string, where: { cpu?: number | string; processes?: number }): Promise<Target> => {
    const server = await startBaselineBroker({ issuer, claims: claimsGrantedIn(POLICY_SIZES[0]), ...where });
    servers.push(server);
    const granted = () => {
      const lines = readFileSync(server.logFile, 'utf8')
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { decision: string; jti?: string });
      const grants = lines.filter((line) => line.decision === 'granted');
      return { exchanges: grants.length, distinctTokens: new Set(grants.map((line) => line.jti)).size };
    };
    return { label, server, tokens: (supplies[0] as TokenSupply).reader(), runs: [], granted };
  };
  const baseline = await baselineTarget('hand-rolled baseline', cpu);
  // The baseline on every core too: how far these CPUs, shared with the load generator, let a server scale whose processes never hand work to each other.
  const baselineAllCores =
    plan === undefined
      ? undefined
      : await baselineTarget(`hand-rolled baseline, ${machine.cpus} processes`, { cpu: `0-${machine.cpus - 1}`, processes: machine.cpus });
  // Granting what the baseline grants, it shares those tokens too.
  const httpFloorServer = await startHttpFloorBroker({ issuer, claims: claimsGrantedIn(POLICY_SIZES[0]), ...cpu });
  servers.push(httpFloorServer);
  const httpFloor: Target = {
    label: 'HTTP + crypto floor',
    server: httpFloorServer,
    tokens: (supplies[0] as TokenSupply).reader(),
    runs: [],
    granted: () => httpFloorServer.granted(),
  };
  const targets = [
    ...keyway,
    ...(allCores === undefined ? [] : [allCores]),
    baseline,
    ...(baselineAllCores === undefined ? [] : [baselineAllCores]),
    httpFloor,
  ];
  for (const target of targets) {
    await target.tokens.reserve(WARM_UP);
    await warmUp(target.server.url, target.tokens, WARM_UP);
  }
  for (const target of [allCores, baselineAllCores]) {
    if (target === undefined) continue;
    // node:cluster hands each connection to the next process: over many connections, every process fetches the JWKS and warms up.
    await target.tokens.reserve(WARM_UP * machine.cpus);
    await runLoad({ url: target.server.url, tokens: firstTokens(target.tokens, WARM_UP * machine.cpus), seconds: 60, connections: CONNECTIONS });
  }
  const jwksAfterWarmUp = await issuer.hits();
  /** keyway's JWKS fetches after warm-up: counted around its own runs only (the baseline's jwks-rsa has a cache of its own). */
  let keywayJwksFetches = 0;
  const keywayRun = async (target: Target, rate?: number, seconds?: number): Promise<Run> => {
    const before = (await issuer.hits()).jwks;
    const run = await measuredRun(target, rate, seconds);
    keywayJwksFetches += (await issuer.hits()).jwks - before;
    return run;
  };

  // Interleaved rounds, so that a neighbour's load on a shared machine hits every server alike; best round counts.
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const target of targets) {
      const run = [baseline, baselineAllCores, httpFloor].includes(target) ? await measuredRun(target) : await keywayRun(target);
      target.runs.push(run);
      const dry = target.tokens.remaining === 0 ? ' (ran out of tokens before the time was up: the next round signs more)' : '';
      console.log(`  round ${round}, ${target.label.padEnd(24)}: ${runLine(run)}${dry}`);
    }
  }
  const [small, large] = keyway as [Target, Target];
  const pct = (value: number) => `${Number((value * 100).toFixed(1))}%`;
  // Both runs' tokens signed first, so that the measured run follows the warm-up at once.
  await small.tokens.reserve(Math.round(RATE * (RATE_WARM_UP_SECONDS + RATE_SECONDS)));
  const rateWarmUp = RATE_WARM_UP_SECONDS > 0 ? await keywayRun(small, RATE, RATE_WARM_UP_SECONDS) : undefined;
  if (rateWarmUp !== undefined) {
    console.log(
      `  fixed rate ${RATE}/s, first ${RATE_WARM_UP_SECONDS}s (warm-up, not counted), ${small.label}: ${runLine(rateWarmUp)}, max ${rateWarmUp.max} ms`,
    );
  }
  const timingsBefore = await brokerTimings(small.server.url);
  const fixed = await keywayRun(small, RATE);
  const timingsAfter = await brokerTimings(small.server.url);
  // What makes the tail: the broker's own timing of its answers, and of the durable audit append within each.
  const overTarget = {
    exchanges: shareOver(timingsBefore.exchange, timingsAfter.exchange, TARGET.p99Ms / 1000),
    auditAppends: shareOver(timingsBefore.auditAppend, timingsAfter.auditAppend, TARGET.p99Ms / 1000),
  };
  /** The p99 as runs measured it before the warm-up was left out: over the warm-up and the measured run together. */
  const p99WithWarmUp =
    rateWarmUp === undefined
      ? fixed.p99
      : percentile(
          [...(rateWarmUp.latenciesMs ?? []), ...(fixed.latenciesMs ?? [])].sort((a, b) => a - b),
          0.99,
        );
  const notCounted = rateWarmUp === undefined ? '' : ` after ${RATE_WARM_UP_SECONDS} s at the rate not counted (with them: p99 ${p99WithWarmUp} ms)`;
  console.log(`  fixed rate ${RATE}/s for ${RATE_SECONDS}s, ${small.label}: ${runLine(fixed)}, max ${fixed.max} ms${notCounted}`);
  console.log(
    `    over ${TARGET.p99Ms} ms as the broker timed them: ${pct(overTarget.exchanges)} of its answers, ${pct(overTarget.auditAppends)} of their audit appends alone`,
  );

  // The servers' own records say whether any of them was sent a token twice (each token has its own jti; keyway logs each token's SHA-256).
  await Promise.all(servers.map((server) => server.stop()));
  const tokenUse = Object.fromEntries(targets.map((target) => [target.label, target.granted()]));
  const repeatedTokens = Object.values(tokenUse).reduce((sum, use) => sum + use.exchanges - use.distinctTokens, 0);

  const throughput = best(small) as Run;
  const baselineBest = best(baseline) as Run;
  const keywayPerCpu = perCpuSecond(small);
  const baselinePerCpu = perCpuSecond(baseline);
  const httpFloorBest = best(httpFloor) as Run;
  const httpFloorPerCpu = perCpuSecond(httpFloor);
  /** CPU µs per exchange, every thread of the server: what a per-CPU-second rate means for one exchange. */
  const cpuMicros = (perCpu: number) => Math.round(1_000_000 / perCpu);
  const ratios: Record<'baseline' | 'nodeCryptoFloor' | 'joseFloor', Ratio> = {
    baseline: { perCpuSecond: keywayPerCpu / baselinePerCpu, wallClock: throughput.rate / baselineBest.rate },
    nodeCryptoFloor: { perCpuSecond: keywayPerCpu / nodeFloor.unitsPerCpuSecond, wallClock: throughput.rate / nodeFloor.unitsPerSecond },
    joseFloor: { perCpuSecond: keywayPerCpu / floor.unitsPerCpuSecond, wallClock: throughput.rate / floor.unitsPerSecond },
  };
  // Throughput by cores: one broker process pinned to one CPU, and KEYWAY_PROCESSES=<CPUs> on all of them, in the same rounds.
  // Judged per CPU-second, as every ratio here: N cores do N times what each CPU-second of the N processes did, over one
  // process's CPU-second. Wall clock beside it: on this machine the load generator takes part of the CPUs the N processes share.
  const allCoresBest = allCores === undefined ? undefined : best(allCores);
  const allCoresPerCpu = allCores === undefined ? undefined : perCpuSecond(allCores);
  type CoresEntry = { exchangesPerSecond: number; exchangesPerCpuSecond: number; brokerCpuCores: number; loadGeneratorCores: number };
  const coresEntry = (run: Run, cpuSecond: number): CoresEntry => ({
    exchangesPerSecond: Math.round(run.rate),
    exchangesPerCpuSecond: Math.round(cpuSecond),
    brokerCpuCores: Number(run.cpuCores.toFixed(2)),
    loadGeneratorCores: Number(run.loadGeneratorCores.toFixed(2)),
  });
  const keywayByCores: Record<string, CoresEntry> = {
    1: coresEntry(throughput, keywayPerCpu),
    ...(allCoresBest === undefined || allCoresPerCpu === undefined ? {} : { [machine.cpus]: coresEntry(allCoresBest, allCoresPerCpu) }),
  };
  const scalingFactor = allCoresPerCpu === undefined ? undefined : (machine.cpus * allCoresPerCpu) / keywayPerCpu;
  const baselineAllCoresBest = baselineAllCores === undefined ? undefined : best(baselineAllCores);
  const baselineAllCoresPerCpu = baselineAllCores === undefined ? undefined : perCpuSecond(baselineAllCores);
  const baselineScaling = baselineAllCoresPerCpu === undefined ? undefined : (machine.cpus * baselineAllCoresPerCpu) / baselinePerCpu;
  const baselineByCores: Record<string, CoresEntry> = {
    1: coresEntry(baselineBest, baselinePerCpu),
    ...(baselineAllCoresBest === undefined || baselineAllCoresPerCpu === undefined
      ? {}
      : { [machine.cpus]: coresEntry(baselineAllCoresBest, baselineAllCoresPerCpu) }),
  };
  const wallClockScaling = allCoresBest === undefined ? undefined : allCoresBest.rate / throughput.rate;
  const scalingTarget = 1 + TARGET.addedCoreShare * (Math.max(2, machine.cpus) - 1);
  const policyCost = 1 - (best(large) as Run).rate / throughput.rate;
  const failures = [...targets.flatMap((target) => target.runs), ...(rateWarmUp === undefined ? [] : [rateWarmUp]), fixed].reduce(
    (sum, run) => sum + run.failures,
    0,
  );
  const rateHeld = fixed.rate >= RATE * 0.98 && fixed.failures === 0;

  const times = (value: number) => `${Number(value.toFixed(2))}×`;
  const verdict = (met: boolean) => (met ? 'MET' : 'MISSED');
  /** A ratio's target, judged per CPU-second, with the wall-clock ratio beside it. */
  const ratioTarget = (ratio: Ratio, format: (value: number) => string, against: string, min: number, goal?: number) => ({
    target: `≥ ${format(min)}${goal === undefined ? '' : ` (goal ${format(goal)})`}`,
    value: ratio.perCpuSecond,
    wallClockValue: ratio.wallClock,
    verdict: verdict(ratio.perCpuSecond >= min),
    ...(goal === undefined ? {} : { goal: verdict(ratio.perCpuSecond >= goal) }),
    reason: `${format(ratio.perCpuSecond)}: keyway ${Math.round(keywayPerCpu)} exchanges per CPU-second against ${against}`,
  });
  const scalingReason =
    allCoresBest === undefined || allCoresPerCpu === undefined
      ? 'one CPU: no second core to scale to'
      : `${times(scalingFactor ?? 0)} per CPU-second on ${machine.cpus} processes (${Math.round(allCoresPerCpu)} exchanges per CPU-second against one process's ` +
        `${Math.round(keywayPerCpu)}); wall clock ${times(wallClockScaling ?? 0)}: ${Math.round(allCoresBest.rate)} /s on ${allCoresBest.cpuCores.toFixed(2)} cores ` +
        `while the load generator took ${allCoresBest.loadGeneratorCores.toFixed(2)}; the hand-rolled baseline, whose processes share nothing, ` +
        `${times(baselineScaling ?? 0)} per CPU-second on the same CPUs in the same rounds`;
  const targetsSummary = {
    baselineRatio: ratioTarget(ratios.baseline, times, `the baseline's ${Math.round(baselinePerCpu)}, both on one core`, TARGET.baseline, TARGET.baselineGoal),
    nodeCryptoFloorRatio: ratioTarget(
      ratios.nodeCryptoFloor,
      pct,
      `node:crypto's ${nodeFloor.unitsPerCpuSecond} units`,
      TARGET.nodeFloor,
      TARGET.nodeFloorGoal,
    ),
    floorRatio: ratioTarget(ratios.joseFloor, pct, `jose's ${floor.unitsPerCpuSecond} units`, TARGET.joseFloor),
    p99AtRate: {
      target: `p99 < ${TARGET.p99Ms} ms at ${RATE}/s`,
      value: fixed.p99,
      verdict: verdict(rateHeld && fixed.p99 < TARGET.p99Ms),
      reason:
        (rateHeld
          ? `p99 ${fixed.p99} ms${notCounted}`
          : `${fixed.rate.toFixed(0)}/s answered with ${fixed.failures} failures, not ${RATE}/s: the queue grew all run`) +
        `; over ${TARGET.p99Ms} ms in the broker: ${pct(overTarget.exchanges)} of answers, ${pct(overTarget.auditAppends)} of audit appends alone`,
    },
    coreScaling: {
      target: `1 → ${Math.max(2, machine.cpus)} cores ≥ ${times(scalingTarget)}`,
      value: scalingFactor ?? null,
      wallClockValue: wallClockScaling ?? null,
      verdict: verdict(scalingFactor !== undefined && scalingFactor >= scalingTarget),
      reason: scalingReason,
    },
    policyCost: {
      target: `< ${pct(TARGET.policyCost)}`,
      value: policyCost,
      verdict: verdict(policyCost < TARGET.policyCost),
      reason: `${pct(policyCost)} slower with ${large.label.slice('keyway, '.length)}`,
    },
    bundleGzip: {
      target: `< ${TARGET.bundleGzipBytes / 1000} kB gzipped`,
      value: bundle.gzipBytes,
      verdict: verdict(bundle.gzipBytes < TARGET.bundleGzipBytes),
      reason: `${bundle.gzipBytes} bytes gzipped`,
    },
    jwksFetchesSteady: {
      target: '0 after warm-up',
      value: keywayJwksFetches,
      verdict: verdict(keywayJwksFetches === 0),
      reason: `${keywayJwksFetches} fetches during keyway's runs`,
    },
  };
  const summary = {
    machine,
    setup: {
      transport:
        'HTTP/1.1 on 127.0.0.1 from the bench process (a second process): autocannon for the throughput runs, evenly spaced requests for the fixed rate',
      broker: 'bench/serve-broker.ts on: exactly npm start (durable audit log, every alert rule), one process; and KEYWAY_PROCESSES=<CPUs> on every CPU',
      baseline:
        'bench/baseline-broker.ts: express + jsonwebtoken + jwks-rsa, one hard-coded rule, ES256 minting, a log line per decision to a file; one core, and on every CPU as <CPUs> copies under node:cluster (bench/baseline-processes.ts)',
      httpFloor:
        'bench/http-floor-broker.ts: Hono on @hono/node-server, node:crypto RS256 verify + ES256 sign, the claims checks and one rule, nothing else; one core',
      brokerCpu:
        plan === undefined
          ? 'unpinned (one CPU machine)'
          : `pinned to CPU ${plan.broker} (keyway and the baseline alike); the ${machine.cpus}-process broker to CPUs 0-${machine.cpus - 1}, which the load generator shares`,
      connections: CONNECTIONS,
      runSeconds: SECONDS,
      rounds: ROUNDS,
      rateSeconds: RATE_SECONDS,
      rateWarmUpSeconds: RATE_WARM_UP_SECONDS,
      warmUpExchanges: WARM_UP,
    },
    tokens: { signed: supplies.reduce((sum, supply) => sum + supply.signed, 0), grantedByServer: tokenUse, repeated: repeatedTokens },
    cryptoFloor: floor,
    nodeCryptoFloor: nodeFloor,
    throughput: {
      policies: POLICY_SIZES[0],
      exchangesPerSecond: Math.round(throughput.rate),
      exchangesPerCpuSecond: Math.round(keywayPerCpu),
      p50Ms: throughput.p50,
      p99Ms: throughput.p99,
      brokerCpuCores: Number(throughput.cpuCores.toFixed(2)),
    },
    baseline: {
      exchangesPerSecond: Math.round(baselineBest.rate),
      exchangesPerCpuSecond: Math.round(baselinePerCpu),
      p50Ms: baselineBest.p50,
      p99Ms: baselineBest.p99,
      cpuCores: Number(baselineBest.cpuCores.toFixed(2)),
    },
    httpFloor: {
      exchangesPerSecond: Math.round(httpFloorBest.rate),
      exchangesPerCpuSecond: Math.round(httpFloorPerCpu),
      p50Ms: httpFloorBest.p50,
      p99Ms: httpFloorBest.p99,
      cpuCores: Number(httpFloorBest.cpuCores.toFixed(2)),
    },
    cpuMicrosPerExchange: { keyway: cpuMicros(keywayPerCpu), baseline: cpuMicros(baselinePerCpu), httpFloor: cpuMicros(httpFloorPerCpu) },
    ratios,
    scaling: {
      cores: machine.cpus,
      keyway: keywayByCores,
      baseline: baselineByCores,
      perCpuSecondFactor: { keyway: scalingFactor ?? null, baseline: baselineScaling ?? null },
    },
    fixedRate: {
      rate: RATE,
      seconds: RATE_SECONDS,
      answeredPerSecond: Math.round(fixed.rate),
      p50Ms: fixed.p50,
      p99Ms: fixed.p99,
      maxMs: fixed.max,
      brokerCpuCores: Number(fixed.cpuCores.toFixed(2)),
      overTargetInBroker: { ms: TARGET.p99Ms, exchanges: Number(overTarget.exchanges.toFixed(4)), auditAppends: Number(overTarget.auditAppends.toFixed(4)) },
      warmUp:
        rateWarmUp === undefined
          ? null
          : {
              seconds: RATE_WARM_UP_SECONDS,
              answeredPerSecond: Math.round(rateWarmUp.rate),
              failures: rateWarmUp.failures,
              p50Ms: rateWarmUp.p50,
              p99Ms: rateWarmUp.p99,
              maxMs: rateWarmUp.max,
            },
      p99WithWarmUpMs: p99WithWarmUp,
    },
    policies: Object.fromEntries(keyway.map((target, index) => [POLICY_SIZES[index], Math.round((best(target) as Run).rate)])),
    bundle,
    jwks: { fetchesDuringWarmUp: jwksAfterWarmUp.jwks, fetchesAfterWarmUp: keywayJwksFetches },
    failures,
    targets: targetsSummary,
  };

  type Row = [figure: string, measured: string, target: string, verdict: string];
  const row = (figure: string, measured: string, judged?: { target: string; verdict: string }): Row => [
    figure,
    measured,
    judged?.target ?? '',
    judged?.verdict ?? '',
  ];
  const ratioCell = (ratio: Ratio, format: (value: number) => string) => `${format(ratio.perCpuSecond)} per CPU-second; ${format(ratio.wallClock)} wall clock`;
  const serverCell = (run: Run, cpuSecond: number) =>
    `${Math.round(run.rate)} /s, p50 ${run.p50} ms, p99 ${run.p99} ms; ${Math.round(cpuSecond)} per CPU-second`;
  const floorCell = (units: CryptoFloor) => `${units.unitsPerSecond} verify+sign /s; ${units.unitsPerCpuSecond} per CPU-second`;
  const { minified, rawBytes, gzipBytes } = bundle;
  const rows: Row[] = [
    row('exchange throughput (max, 1 core)', serverCell(throughput, keywayPerCpu)),
    row('hand-rolled baseline (max, 1 core)', serverCell(baselineBest, baselinePerCpu)),
    row('HTTP + crypto floor (max, 1 core)', serverCell(httpFloorBest, httpFloorPerCpu)),
    row(
      'CPU µs per exchange',
      `keyway ${cpuMicros(keywayPerCpu)}, baseline ${cpuMicros(baselinePerCpu)}, HTTP + crypto floor ${cpuMicros(httpFloorPerCpu)}: ` +
        `keyway's own work ${cpuMicros(keywayPerCpu) - cpuMicros(httpFloorPerCpu)}`,
    ),
    row('node:crypto floor (1 core)', floorCell(nodeFloor)),
    row('jose floor (1 core)', floorCell(floor)),
    row('keyway / hand-rolled baseline', ratioCell(ratios.baseline, times), targetsSummary.baselineRatio),
    row('keyway / node:crypto floor', ratioCell(ratios.nodeCryptoFloor, pct), targetsSummary.nodeCryptoFloorRatio),
    row('keyway / jose floor', ratioCell(ratios.joseFloor, pct), targetsSummary.floorRatio),
    row(
      `latency at ${RATE}/s`,
      `p50 ${fixed.p50} ms, p99 ${fixed.p99} ms (${Math.round(fixed.rate)}/s answered)` +
        (rateWarmUp === undefined ? '' : `; the ${RATE_WARM_UP_SECONDS} s before, not counted: p99 ${rateWarmUp.p99} ms (both together: ${p99WithWarmUp} ms)`),
      targetsSummary.p99AtRate,
    ),
    row(
      'cores: 1 vs all',
      allCoresBest === undefined || scalingFactor === undefined || wallClockScaling === undefined
        ? `keyway ${Math.round(throughput.rate)} /s on 1 core; one CPU, nothing to scale to`
        : `keyway ${Math.round(throughput.rate)} /s on 1, ${Math.round(allCoresBest.rate)} /s with ${machine.cpus} processes: ` +
            `${times(scalingFactor)} per CPU-second; ${times(wallClockScaling)} wall clock (load generator on the same CPUs: ${allCoresBest.loadGeneratorCores.toFixed(2)} cores); ` +
            `the baseline ${times(baselineScaling ?? 0)} per CPU-second`,
      targetsSummary.coreScaling,
    ),
    row(
      `10 vs ${POLICY_SIZES[1].toLocaleString('en')} policies`,
      `${summary.policies[POLICY_SIZES[0]]} vs ${summary.policies[POLICY_SIZES[1]]} /s: ${pct(policyCost)} cost`,
      targetsSummary.policyCost,
    ),
    row(
      'Worker bundle',
      `${(rawBytes / 1024).toFixed(1)} KiB raw, ${(gzipBytes / 1024).toFixed(1)} KiB gzipped (${minified ? '' : 'not '}minified)`,
      targetsSummary.bundleGzip,
    ),
    row('JWKS fetches, steady state', `${keywayJwksFetches} (warm-up: ${jwksAfterWarmUp.jwks}, the baseline's included)`, targetsSummary.jwksFetchesSteady),
    row('failed exchanges (all runs)', String(failures)),
    row('subject tokens sent twice', `${repeatedTokens} (${Object.values(tokenUse).reduce((sum, use) => sum + use.exchanges, 0)} grants, all servers)`),
  ];
  const widths = [0, 1, 2, 3].map((column) =>
    Math.max(...rows.map((row) => row[column]?.length ?? 0), ['figure', 'measured', 'target', ''][column]?.length ?? 0),
  );
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  console.log();
  console.log(line(['figure', 'measured', 'target', '']));
  console.log(line(widths.map((width) => '-'.repeat(width))));
  for (const row of rows) console.log(line(row));
  for (const [name, entry] of Object.entries(targetsSummary)) {
    if (entry.verdict === 'MISSED') console.log(`MISSED ${name} (${entry.target}): ${entry.reason}`);
    else if ('goal' in entry && entry.goal === 'MISSED') console.log(`MET ${name}, but not its goal (${entry.target}): ${entry.reason}`);
  }
  console.log();
  console.log(JSON.stringify(summary, null, 2));
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`written to ${RESULTS}`);
  if (repeatedTokens > 0) {
    console.log(`the run is void: ${repeatedTokens} exchanges reused a token a server had already seen, which a cache could have made cheaper`);
    process.exitCode = 1;
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  await closeIssuer();
}
