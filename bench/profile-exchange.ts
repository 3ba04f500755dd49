// `npm run bench:profile`: where one exchange's CPU goes. One broker (`npm start`'s configuration,
// every alert rule, pinned like npm run bench's) run with `node --cpu-prof`, sent PROFILE_EXCHANGES
// distinct tokens as fast as it answers; then, per exchange: the CPU time of each of the broker's
// threads (from /proc: the event loop, the audit writer, libuv's threadpool, V8's helpers), and the
// event loop's profile summed by where the code lives (jose, node:crypto, the HTTP stack, SQLite,
// keyway's own modules…) and by function. Not a test and not a figure with a target: the profile
// that explains the bench's figures. Settings: PROFILE_EXCHANGES (20000), PROFILE_CONNECTIONS (32),
// PROFILE_TOP (25 functions), PROFILE_PINNED (1), PROFILE_POLICIES (10: the realistic set's size), PROFILE_ENV (extra KEYWAY_* settings as JSON, e.g. '{"KEYWAY_PROCESSES":"2"}').
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_ISSUER, cpuPlan, pinSelf, startBenchBroker, startBenchIssuer, threadCpuMs } from './broker-process.ts';
import { envNumber } from './env-number.ts';
import { runLoad, TokenSupply, warmUp } from './exchange-load.ts';
import { claimsGrantedIn } from './realistic-policies.ts';

const EXCHANGES = envNumber('PROFILE_EXCHANGES', 20_000);
const CONNECTIONS = envNumber('PROFILE_CONNECTIONS', 32);
const TOP = envNumber('PROFILE_TOP', 25);
const POLICIES = envNumber('PROFILE_POLICIES', 10);
const EXTRA_ENV = JSON.parse(process.env['PROFILE_ENV'] ?? '{}') as Record<string, string>;

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}
interface Profile {
  /** µs on the monotonic clock, the one `process.hrtime` reads in every process of the machine. */
  readonly startTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives, coarsely: the buckets the issue names. */
function area(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const rules: [RegExp, string][] = [
    [/node_modules\/jose\//, 'jose'],
    [/node:internal\/crypto|internal\/crypto/, 'node:crypto / WebCrypto'],
    [/node_modules\/hono\//, 'hono'],
    [/node_modules\/@hono\/node-server\//, '@hono/node-server'],
    [/node_modules\/undici\/|node:internal\/deps\/undici/, 'undici (web Request/Response)'],
    [/node:_http|node:internal\/http|node:net|node:internal\/stream|node:stream|node:internal\/streams/, 'node:http, net, streams'],
    [/node_modules\/better-sqlite3\//, 'better-sqlite3'],
    [/node:internal\/worker|node:worker_threads|internal\/per_context\/messageport/, 'worker_threads (postMessage)'],
    [/node_modules\/canonicalize|node_modules\/@noble/, 'audit hashing (JCS, SHA-256)'],
    [/node_modules\/ulid/, 'ulid'],
    [/node_modules\/valibot|node_modules\/ipaddr/, 'other dependencies'],
    [/\/src\/core\/audit\/|\/src\/runtimes\/node\/(group-commit-audit-store|audit-writer|shared-audit-writer)|\/src\/storage\/sqlite-audit/, 'keyway: audit'],
    [/\/src\/features\/alerts\/|\/src\/storage\/sqlite-alert/, 'keyway: alerts'],
    [/\/src\/core\/policy\//, 'keyway: policy decision'],
    [/\/src\/core\/verify\//, 'keyway: verification'],
    [/\/src\/runtimes\/node\/node-jwt-crypto/, 'keyway: node:crypto JWT adapter'],
    [/\/src\/core\/mint\//, 'keyway: minting'],
    [/\/src\/core\/exchange\//, 'keyway: the exchange'],
    [/\/src\/http\//, 'keyway: HTTP layer'],
    [/\/src\//, 'keyway: other'],
    [/^node:/, 'node: other'],
  ];
  return rules.find(([pattern]) => pattern.test(url))?.[1] ?? 'other';
}

// PROFILE_PINNED=0 leaves the broker free to use every CPU: pinned, a thread woken on the broker's one CPU (the audit
// writer, the threadpool) takes it from the event loop at once, and the event loop's samples count that time as their own.
const plan = process.env['PROFILE_PINNED'] === '0' ? undefined : cpuPlan();
if (plan !== undefined) pinSelf(plan.driver);
const profileDir = mkdtempSync(join(tmpdir(), 'keyway-profile-'));
const { issuer, close } = await startBenchIssuer();
const supply = new TokenSupply(issuer, BROKER_ISSUER, claimsGrantedIn(POLICIES), 3600);
const tokens = supply.reader();
const broker = await startBenchBroker({
  issuer,
  policies: POLICIES,
  ...(plan === undefined ? {} : { cpu: plan.broker }),
  env: { KEYWAY_ALERT_RULES: 'all', NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}`, ...EXTRA_ENV },
});
try {
  await tokens.reserve(EXCHANGES + 500);
  await warmUp(broker.url, tokens, 500);
  const before = threadCpuMs(broker.pid);
  const loadStarted = monotonicMicroseconds();
  const result = await runLoad({ url: broker.url, tokens, seconds: 600, connections: CONNECTIONS });
  const loadEnded = monotonicMicroseconds();
  const after = threadCpuMs(broker.pid);
  await broker.stop();
  const exchanges = result.answered;
  const perExchange = (ms: number) => ((ms * 1000) / exchanges).toFixed(1).padStart(7);
  let total = 0;
  console.log(`${exchanges} exchanges at ${result.rate.toFixed(0)}/s (${result.failures} failures); CPU µs per exchange by thread:`);
  for (const [name, ms] of [...after].map(([name, ms]) => [name, ms - (before.get(name) ?? 0)] as const).sort((a, b) => b[1] - a[1])) {
    total += ms;
    if (ms > 0) console.log(`  ${perExchange(ms)}  ${name}`);
  }
  console.log(`  ${perExchange(total)}  all threads`);

  // The event loop's profile: Node names each file CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile, the main thread being 0.
  const mainFile = readdirSync(profileDir).find((file) => file.startsWith('CPU.') && file.split('.')[4] === '0');
  if (mainFile === undefined) throw new Error(`no main-thread profile in ${profileDir}`);
  const main = JSON.parse(readFileSync(join(profileDir, mainFile), 'utf8')) as Profile;
  const nodes = new Map(main.nodes.map((node) => [node.id, node]));
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let sampled = 0;
  // Only the samples taken while the load ran, as the threads' CPU above: start-up, module compilation and the warm-up
  // would otherwise be spread over the exchanges.
  let sampledAt = main.startTime;
  main.samples.forEach((id, index) => {
    const frame = nodes.get(id)?.callFrame;
    const us = main.timeDeltas[index] ?? 0;
    sampledAt += us;
    if (sampledAt < loadStarted || sampledAt > loadEnded) return;
    if (frame === undefined || frame.functionName === '(idle)') return;
    sampled += us;
    const where = area(frame.url, frame.functionName);
    byArea.set(where, (byArea.get(where) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  });
  const share = (us: number) => `${((us / sampled) * 100).toFixed(1).padStart(5)}%  ${perExchange(us / 1000)} µs`;
  console.log(`\nevent loop, busy samples while the load ran, by area (self time; ${perExchange(sampled / 1000)} µs per exchange sampled):`);
  for (const [where, us] of [...byArea].sort((a, b) => b[1] - a[1])) console.log(`  ${share(us)}  ${where}`);
  console.log(`\ntop ${TOP} functions (self time):`);
  for (const [fn, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${share(us)}  ${fn}`);
  console.log(`\nprofiles in ${profileDir} (open in Chrome DevTools or speedscope)`);
} finally {
  await broker.stop();
  await close();
}

function monotonicMicroseconds(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
