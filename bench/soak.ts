// `npm run soak`: a broker (exactly `npm start`, durable audit log) under a steady rate on
// 127.0.0.1 for SOAK_SECONDS, sampled every interval, then two faults under the same load:
// the issuer going down (past the JWKS freshness, so the cached keys go stale), and the audit
// store failing for real (the broker process's file-size limit dropped to 0 with prlimit: every
// write to its SQLite file fails with EFBIG, as on a full disk). Prints every interval, the
// criteria and their verdicts, and a JSON summary; exits 1 when a criterion fails.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { BROKER_ISSUER, startBenchBroker, startBenchIssuer } from './broker-process.ts';
import { envNumber } from './env-number.ts';
import { claimsGrantedIn } from './realistic-policies.ts';
import { cycle, runLoad, signTokenPool, warmUp, type Answer, type LoadResult } from './exchange-load.ts';

const SECONDS = envNumber('SOAK_SECONDS', 300);
const INTERVAL = envNumber('SOAK_INTERVAL_SECONDS', 10);
const RATE = envNumber('SOAK_RATE', 250);
const CONNECTIONS = envNumber('SOAK_CONNECTIONS', 16);
const TOKENS = envNumber('SOAK_TOKENS', 2000);
// The issuer's JWKS says max-age=60 (the broker's floor), and stays down longer than that.
const JWKS_MAX_AGE = 60;
const ISSUER_DOWN_SECONDS = envNumber('SOAK_ISSUER_DOWN_SECONDS', 90);
const STORE_FAULT_SECONDS = envNumber('SOAK_STORE_FAULT_SECONDS', 10);
const FLAT = { memory: 0.1, latencyRatio: 0.2, latencySlackMs: 2 } as const;

const { issuer, close: closeIssuer } = await startBenchIssuer();
await issuer.settings({ cacheControl: `public, max-age=${JWKS_MAX_AGE}` });
const total = SECONDS + ISSUER_DOWN_SECONDS + 3 * STORE_FAULT_SECONDS;
const tokens = cycle(await signTokenPool(issuer, BROKER_ISSUER, claimsGrantedIn(10), TOKENS, total + 3600));
// Not pinned: the broker as `npm start` runs it, free to use every CPU.
const broker = await startBenchBroker({ issuer, policies: 10 });
console.log(
  `keyway soak: ${RATE} exchanges/s for ${SECONDS}s (${INTERVAL}s intervals), then the issuer down ${ISSUER_DOWN_SECONDS}s (JWKS max-age ${JWKS_MAX_AGE}s), then the audit store failing ${STORE_FAULT_SECONDS}s`,
);

/** Every answer: 200s must carry an audit event id, which must be in the log at the end; nothing else may carry a token. */
const granted: string[] = [];
const statuses = new Map<number, number>();
let tokensOutsideGrants = 0;
const check = (answer: Answer): void => {
  statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
  if (answer.status === 200) {
    granted.push((JSON.parse(answer.body) as { audit_event_id: string }).audit_event_id);
  } else if (answer.body.includes('access_token')) {
    tokensOutsideGrants += 1;
  }
};

interface Sample extends LoadResult {
  readonly t: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
}
const mib = (bytes: number) => bytes / 2 ** 20;
let clock = 0;
async function interval(seconds: number, label: string, onAnswer: (answer: Answer) => void = check): Promise<Sample> {
  const load = await runLoad({ url: broker.url, tokens, seconds, connections: CONNECTIONS, rate: RATE, onAnswer });
  const memory = await broker.memory();
  clock += seconds;
  const sample = { ...load, t: clock, rssMiB: mib(memory.rss), heapMiB: mib(memory.heapUsed) };
  console.log(
    `  ${label} t=${String(clock).padStart(4)}s  ${load.rate.toFixed(0).padStart(4)}/s  p50 ${load.p50.toFixed(1).padStart(5)} ms  p99 ${load.p99.toFixed(1).padStart(6)} ms  max ${load.max.toFixed(1).padStart(6)} ms  rss ${sample.rssMiB.toFixed(1)} MiB  heap ${sample.heapMiB.toFixed(1)} MiB  failures ${load.failures}`,
  );
  return sample;
}
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? Number.NaN
    : sorted.length % 2 === 1
      ? (sorted[(sorted.length - 1) / 2] as number)
      : ((sorted[sorted.length / 2 - 1] as number) + (sorted[sorted.length / 2] as number)) / 2;
};

const steady: Sample[] = [];
const down: Sample[] = [];
let downAttempts = 0;
const storeFault = { during: new Map<number, number>(), after: new Map<number, number>(), rejected: 0 };
try {
  await warmUp(broker.url, tokens, 200);

  // 1. Steady state.
  for (let t = 0; t < SECONDS; t += INTERVAL) steady.push(await interval(Math.min(INTERVAL, SECONDS - t), 'steady'));

  // 2. The issuer goes down: the broker keeps verifying with the keys it has.
  await issuer.settings({ down: true });
  const beforeDown = await issuer.hits();
  for (let t = 0; t < ISSUER_DOWN_SECONDS; t += INTERVAL) down.push(await interval(Math.min(INTERVAL, ISSUER_DOWN_SECONDS - t), 'issuer down'));
  const afterDown = await issuer.hits();
  downAttempts = afterDown.discovery + afterDown.jwks - beforeDown.discovery - beforeDown.jwks;
  await issuer.settings({ down: false });

  // 3. The audit store fails: every write of the broker process to a file is refused (EFBIG).
  const limit = (value: string) => {
    const result = spawnSync('prlimit', ['--pid', String(broker.pid), `--fsize=${value}`], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`prlimit failed: ${result.stderr}`);
  };
  const original = spawnSync('prlimit', ['--pid', String(broker.pid), '--fsize', '--output=SOFT,HARD', '--noheadings', '--raw'], { encoding: 'utf8' })
    .stdout.trim()
    .split(/\s+/)
    .join(':');
  const faultStart = Date.now() + STORE_FAULT_SECONDS * 1000;
  const faultEnd = faultStart + STORE_FAULT_SECONDS * 1000;
  const failAt = setTimeout(() => limit(`0:${original.split(':')[1] ?? 'unlimited'}`), faultStart - Date.now());
  const recoverAt = setTimeout(() => limit(original), faultEnd - Date.now());
  const bump = (counts: Map<number, number>, status: number) => counts.set(status, (counts.get(status) ?? 0) + 1);
  try {
    await interval(3 * STORE_FAULT_SECONDS, 'audit store fails in the middle third', (answer) => {
      check(answer);
      // A second's grace either side of each switch: exchanges in flight then may go either way.
      if (answer.at > faultStart + 1000 && answer.at < faultEnd) {
        bump(storeFault.during, answer.status);
        if (answer.status === 503 && (JSON.parse(answer.body) as { error?: string }).error !== 'temporarily_unavailable') storeFault.rejected += 1;
      } else if (answer.at > faultEnd + 2000) {
        bump(storeFault.after, answer.status);
      }
    });
  } finally {
    clearTimeout(failAt);
    clearTimeout(recoverAt);
    limit(original);
  }
} finally {
  await broker.stop();
  await closeIssuer();
}

// Every 200 has its record, and the chain verifies (the broker signed its head on the way out).
const db = new Database(join(broker.dataDir, 'keyway.db'), { readonly: true });
const ids = new Set(db.prepare('SELECT id FROM audit_events').pluck().all() as string[]);
db.close();
const records = ids.size;
const missing = granted.filter((id) => !ids.has(id));
const audit = spawnSync(process.execPath, ['src/cli/main.ts', 'audit', 'verify', '--data-dir', broker.dataDir], { encoding: 'utf8' });
const verified = { code: audit.status ?? -1, output: audit.stdout.trim() || audit.stderr.trim() };

// Flat: the last window against the second one (the first is warm-up: JIT, SQLite's page cache filling).
const window = Math.max(INTERVAL, Math.round(SECONDS / 5));
const baseline = steady.filter((sample) => sample.t > window && sample.t <= 2 * window);
const final = steady.filter((sample) => sample.t > SECONDS - window);
const compare = (pick: (sample: Sample) => number) => ({ baseline: median(baseline.map(pick)), final: median(final.map(pick)) });
const rss = compare((sample) => sample.rssMiB);
const heap = compare((sample) => sample.heapMiB);
const p99 = compare((sample) => sample.p99);
const steadyFailures = steady.reduce((sum, sample) => sum + sample.failures, 0);
const downFailures = down.reduce((sum, sample) => sum + sample.failures, 0);
const only = (counts: Map<number, number>, status: number) => counts.size > 0 && [...counts.keys()].every((key) => key === status);
const verdict = (held: boolean) => (held ? 'HELD' : 'NOT HELD');
const criteria = {
  steadyErrors: { criterion: 'zero failed exchanges in the steady phase', value: steadyFailures, verdict: verdict(steadyFailures === 0) },
  rssFlat: {
    criterion: `RSS: median of the last ${window}s within ${FLAT.memory * 100}% of the median of ${window}–${2 * window}s`,
    value: rss,
    verdict: verdict(rss.final <= rss.baseline * (1 + FLAT.memory)),
  },
  heapFlat: { criterion: `JS heap used after a full collection: the same`, value: heap, verdict: verdict(heap.final <= heap.baseline * (1 + FLAT.memory)) },
  latencyFlat: {
    criterion: `p99 latency: median over the last ${window}s at most ${FLAT.latencyRatio * 100}% or ${FLAT.latencySlackMs} ms above the median of ${window}–${2 * window}s`,
    value: p99,
    verdict: verdict(p99.final <= Math.max(p99.baseline * (1 + FLAT.latencyRatio), p99.baseline + FLAT.latencySlackMs)),
  },
  issuerDown: {
    criterion: `issuer down ${ISSUER_DOWN_SECONDS}s: zero failed exchanges (cached keys keep verifying)`,
    value: { failures: downFailures, exchanges: down.reduce((sum, sample) => sum + sample.answered, 0), brokerFetchAttemptsWhileDown: downAttempts },
    verdict: verdict(downFailures === 0 && down.length > 0),
  },
  storeFailing: {
    criterion: 'audit store failing: every answer is 503 temporarily_unavailable without a token',
    value: Object.fromEntries(storeFault.during),
    verdict: verdict(only(storeFault.during, 503) && storeFault.rejected === 0 && tokensOutsideGrants === 0),
  },
  storeRecovered: {
    criterion: 'after the store recovers: every answer is 200',
    value: Object.fromEntries(storeFault.after),
    verdict: verdict(only(storeFault.after, 200)),
  },
  everyGrantRecorded: {
    criterion: 'every 200 answered in the whole run has its audit record',
    value: { granted: granted.length, records, missing: missing.length },
    verdict: verdict(missing.length === 0 && granted.length > 0),
  },
  chainIntact: {
    criterion: '`keyway audit verify` says intact',
    value: verified.output,
    verdict: verdict(verified.code === 0 && verified.output.startsWith('intact')),
  },
};

console.log();
for (const [name, { criterion, value, verdict: result }] of Object.entries(criteria)) {
  console.log(`  ${result.padEnd(8)} ${name}: ${criterion} — ${typeof value === 'object' ? JSON.stringify(value) : value}`);
}
const summary = {
  setup: {
    rate: RATE,
    seconds: SECONDS,
    intervalSeconds: INTERVAL,
    connections: CONNECTIONS,
    issuerDownSeconds: ISSUER_DOWN_SECONDS,
    jwksMaxAge: JWKS_MAX_AGE,
    storeFaultSeconds: STORE_FAULT_SECONDS,
  },
  statuses: Object.fromEntries(statuses),
  steady: steady.map(({ t, rate, p50, p99: p, max, rssMiB, heapMiB, failures }) => ({
    t,
    rate: Math.round(rate),
    p50,
    p99: p,
    max,
    rssMiB: Number(rssMiB.toFixed(1)),
    heapMiB: Number(heapMiB.toFixed(1)),
    failures,
  })),
  criteria,
};
console.log();
console.log(JSON.stringify(summary));
const results = process.env['SOAK_RESULTS'] || join(import.meta.dirname, 'results', 'soak.json');
mkdirSync(dirname(results), { recursive: true });
writeFileSync(results, `${JSON.stringify(summary, null, 2)}\n`);
process.exitCode = Object.values(criteria).every((entry) => entry.verdict === 'HELD') ? 0 : 1;
