// `npm run bench:ab -- REV...`: what a change buys, measured A/B in one run. Each git revision
// (a commit, a branch, HEAD) is checked out into a temp directory (git archive, sharing this
// checkout's node_modules) and runs one broker as `npm start` would (bench/serve-broker.ts of
// that revision, every alert rule on), all pinned to the same CPU as npm run bench pins its broker.
// They are sent AB_EXCHANGES distinct tokens each, round after round, in turn (the order reversed
// every other round, so a neighbour's load falls on all of them alike); per round, the CPU time
// per exchange of the broker's threads: the event loop, the busiest other thread (the audit
// writer) and all of them. The medians say what the change bought; the rounds say how far to trust
// them. With AB_PROCESSES=N, each revision runs as KEYWAY_PROCESSES=N on every CPU (as npm run bench's
// every-core run) and the CPU time is the process tree's, the supervisor's included, split by nothing.
// Not a test, no target. Settings: AB_ROUNDS (6), AB_EXCHANGES (2500), AB_CONNECTIONS (32), AB_WARM_UP (2500), AB_PROCESSES (1).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BROKER_ISSUER, cpuPlan, pinSelf, processTreeCpuMs, startBenchBroker, startBenchIssuer, threadCpuMs, type BenchBroker } from './broker-process.ts';
import { envNumber } from './env-number.ts';
import { firstTokens, runLoad, TokenSupply, warmUp, type TokenReader } from './exchange-load.ts';
import { claimsGrantedIn } from './realistic-policies.ts';

const ROUNDS = envNumber('AB_ROUNDS', 6);
const EXCHANGES = envNumber('AB_EXCHANGES', 2500);
const CONNECTIONS = envNumber('AB_CONNECTIONS', 32);
/** Exchanges before the first round, so that V8 has compiled the hot path of every broker alike. */
const WARM_UP = Math.max(100, envNumber('AB_WARM_UP', 2500));
const PROCESSES = envNumber('AB_PROCESSES', 1);
const ROOT = resolve(import.meta.dirname, '..');

const revisions = process.argv.slice(2);
if (revisions.length === 0) throw new Error('usage: npm run bench:ab -- REV [REV...] (git revisions, e.g. main HEAD)');

/** `revision` checked out into a temp directory, with this checkout's node_modules. */
function checkout(revision: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', revision], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), `keyway-ab-${commit}-`));
  const archive = spawnSync('sh', ['-c', `git archive ${commit} | tar -x -C ${dir}`], { cwd: ROOT, encoding: 'utf8' });
  if (archive.status !== 0) throw new Error(`git archive ${revision} failed: ${archive.stderr}`);
  const missing = dependenciesNotInstalled(dir);
  if (missing.length > 0) {
    throw new Error(
      `${revision} runs on ${missing.join(', ')}, which this checkout has not installed: bench:ab runs every revision on this checkout's node_modules, so it compares revisions of the same dependencies`,
    );
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** The runtime dependencies of the checkout at `dir` (name@version, from its lock) that this checkout's node_modules lacks or holds at another version. */
function dependenciesNotInstalled(dir: string): string[] {
  const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const { dependencies = {} } = readJson(join(dir, 'package.json')) as { dependencies?: Record<string, string> };
  const { packages = {} } = readJson(join(dir, 'package-lock.json')) as { packages?: Record<string, { version?: string }> };
  return Object.keys(dependencies).flatMap((name) => {
    const wanted = packages[`node_modules/${name}`]?.version;
    const installed = join(ROOT, 'node_modules', name, 'package.json');
    const version = existsSync(installed) ? (readJson(installed) as { version?: string }).version : undefined;
    return version !== undefined && version === wanted ? [] : [`${name}@${wanted ?? dependencies[name]}`];
  });
}

interface Contender {
  readonly revision: string;
  readonly broker: BenchBroker;
  readonly tokens: TokenReader;
  readonly perRound: { all: number; loop: number; busiest: number; rate: number }[];
}

const plan = cpuPlan();
if (plan !== undefined) pinSelf(plan.driver);
const loadBefore = loadavg()[0] ?? 0;
const { issuer, close } = await startBenchIssuer();
const supply = new TokenSupply(issuer, BROKER_ISSUER, claimsGrantedIn(10), 3600);
const contenders: Contender[] = [];
try {
  for (const revision of revisions) {
    const broker = await startBenchBroker({
      issuer,
      policies: 10,
      checkout: checkout(revision),
      ...(plan === undefined ? {} : { cpu: PROCESSES > 1 ? `0-${availableParallelism() - 1}` : plan.broker }),
      env: { KEYWAY_ALERT_RULES: 'all', ...(PROCESSES > 1 ? { KEYWAY_PROCESSES: String(PROCESSES) } : {}) },
    });
    contenders.push({ revision, broker, tokens: supply.reader(), perRound: [] });
  }
  for (const { broker, tokens } of contenders) {
    await tokens.reserve(WARM_UP + ROUNDS * EXCHANGES);
    await warmUp(broker.url, tokens, 100);
    // The rest under load, as the rounds run (a run needs a token per connection at least).
    if (WARM_UP - 100 >= CONNECTIONS) await runLoad({ url: broker.url, tokens: firstTokens(tokens, WARM_UP - 100), seconds: 600, connections: CONNECTIONS });
  }
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const contender of round % 2 === 0 ? contenders : [...contenders].reverse()) {
      const before = threadCpuMs(contender.broker.pid);
      const treeBefore = processTreeCpuMs(contender.broker.pid);
      const result = await runLoad({ url: contender.broker.url, tokens: firstTokens(contender.tokens, EXCHANGES), seconds: 600, connections: CONNECTIONS });
      const spent = [...threadCpuMs(contender.broker.pid)].map(([name, ms]) => [name, ms - (before.get(name) ?? 0)] as const);
      const treeSpent = processTreeCpuMs(contender.broker.pid) - treeBefore;
      if (result.failures > 0) throw new Error(`${contender.revision}: ${result.failures} exchanges failed`);
      const perExchange = (ms: number) => (ms * 1000) / result.answered;
      contender.perRound.push({
        all: perExchange(PROCESSES > 1 ? treeSpent : spent.reduce((sum, [, ms]) => sum + ms, 0)),
        loop: perExchange(spent.find(([name]) => name === 'event loop')?.[1] ?? 0),
        busiest: perExchange(Math.max(0, ...spent.filter(([name]) => name !== 'event loop').map(([, ms]) => ms))),
        rate: result.rate,
      });
    }
  }
} finally {
  await Promise.all(contenders.map(({ broker }) => broker.stop()));
  await close();
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const column = (values: number[]) => `${median(values).toFixed(0).padStart(5)} [${values.map((value) => value.toFixed(0)).join(', ')}]`;
console.log(`CPU µs per exchange, median [each round]; load average ${loadBefore.toFixed(1)} before, ${(loadavg()[0] ?? 0).toFixed(1)} after`);
for (const { revision, perRound } of contenders) {
  console.log(`${revision}`);
  console.log(`  all threads   ${column(perRound.map((round) => round.all))}${PROCESSES > 1 ? `  (${PROCESSES} processes and their supervisor)` : ''}`);
  if (PROCESSES === 1) {
    console.log(`  event loop    ${column(perRound.map((round) => round.loop))}`);
    console.log(`  busiest other ${column(perRound.map((round) => round.busiest))}  (the audit writer)`);
  }
  console.log(`  exchanges/s   ${column(perRound.map((round) => round.rate))}`);
}
// Rounds next to each other saw the same neighbours: the median of the differences round by round is the steadier figure.
const [reference] = contenders;
for (const { revision, perRound } of contenders.slice(1)) {
  const differences = perRound.map((round, index) => round.all - (reference?.perRound[index]?.all ?? 0));
  console.log(`${revision} − ${reference?.revision}, all threads, round by round: median ${column(differences)} µs`);
}
