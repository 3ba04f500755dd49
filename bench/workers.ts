// `npm run bench:workers`: the Worker in workerd on this machine (wrangler's local mode, the
// same bundle and Durable Object classes `wrangler dev` runs, state in a fresh temp dir), driven
// with distinct subject tokens from the loopback test issuer, bounded in count and time. Then the
// audit log is verified over HTTP with `keyway audit verify --url`, and one JSON line is printed:
// exchanges/s, latency, workerd's CPU per exchange, and from GET /v1/audit/shards the appends and
// the milliseconds per append inside each audit shard object (KEYWAY_AUDIT_SHARDS, 16 by default). Loopback only: the Worker, the issuer and the load generator.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { unstable_dev } from 'wrangler';
import { startTestIssuerServer } from '../test/support/test-issuer-server.ts';
import { TestIssuer } from '../test/support/test-issuer.ts';
import { BROKER_ISSUER, processTreeCpuMs } from './broker-process.ts';
import { envNumber } from './env-number.ts';
import { EXCHANGE, runLoad, TokenSupply, type Answer, type TokenSource } from './exchange-load.ts';
import { claimsOfRepository, realisticPolicyFiles } from './realistic-policies.ts';

const EXCHANGES = envNumber('BENCH_WORKERS_EXCHANGES', 2_000);
const SECONDS = envNumber('BENCH_WORKERS_SECONDS', 30);
const CONNECTIONS = envNumber('BENCH_WORKERS_CONNECTIONS', 8);
const AUDIT_SHARDS = process.env['KEYWAY_AUDIT_SHARDS'];
// A fleet: one deploy policy per repository, and the exchanges spread over the repositories, each
// job's `sub` its own, as the audit shards see a real organisation's traffic (a shard per identity).
const REPOSITORIES = envNumber('BENCH_WORKERS_REPOSITORIES', 256);
const ROOT = resolve(import.meta.dirname, '..');

/** One audit shard's figures, as GET /v1/audit/shards reports them. */
interface ShardFigures {
  readonly appends: number;
  readonly cpuMsPerAppend: number;
}

/** The numbered shards of GET /v1/audit/shards (the sealed `legacy` chain, when there is one, takes no appends). */
function shardFigures(listed: unknown): ShardFigures[] {
  const { shards } = listed as { shards: { shard: string; appends?: number; append_ms?: number }[] };
  return shards
    .filter((shard) => shard.shard !== 'legacy')
    .map((shard) => ({ appends: Number(shard.appends), cpuMsPerAppend: Math.round(Number(shard.append_ms) * 1000) / 1000 }));
}

/** CPU time of the workerd processes this process started (wrangler's local mode runs the Worker and its objects in them), in ms. */
function workerdCpuMs(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'workerd') continue;
      const parent = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      if (isDescendant(parent)) total += processTreeCpuMs(Number(entry));
    } catch {
      // A process that ended between listing and reading.
    }
  }
  return total;
}

function isDescendant(pid: number): boolean {
  for (let current = pid, hops = 0; current > 1 && hops < 16; hops += 1) {
    if (current === process.pid) return true;
    current = Number(readFileSync(`/proc/${current}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
  }
  return false;
}

/** `keyway audit verify --url … --json`, as an auditor runs it. */
function auditVerify(url: string, token: string): Promise<Record<string, unknown>> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['src/cli/main.ts', 'audit', 'verify', '--url', url, '--json'], {
      cwd: ROOT,
      env: { ...process.env, KEYWAY_TOKEN: token },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      if (code !== 0 && code !== 1) fail(new Error(`keyway audit verify exited with ${code}: ${stderr}`));
      else done(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

const server = await startTestIssuerServer();
const ci = new TestIssuer(server.base, '_services/token');
const people = new TestIssuer(server.base, 'people');
const root = mkdtempSync(join(tmpdir(), 'keyway-bench-workers-'));
const policiesDir = join(root, 'policies');
const auditor = `version: 1\nissuer: "${people.url}"\nmatch:\n  sub: auditor@acme.dev\ngrant:\n  audience: ${BROKER_ISSUER}\n  scopes: [audit:read]\n  ttl: 10m\n`;
const files = [
  ...realisticPolicyFiles(REPOSITORIES + 2, `{ kind: github, url: "${ci.url}", max_token_age: 24h }`),
  { path: 'auditors/auditor.yaml', text: auditor },
];
for (const file of files) {
  mkdirSync(dirname(join(policiesDir, file.path)), { recursive: true });
  writeFileSync(join(policiesDir, file.path), file.text);
}
// Distinct tokens, each sent once, signed before the Worker starts, taken from the repositories in turn.
const fleet = Array.from({ length: REPOSITORIES }, (_, i) => new TokenSupply(ci, BROKER_ISSUER, claimsOfRepository(i), SECONDS + 3600).reader());
for (const reader of fleet) await reader.reserve(Math.ceil(EXCHANGES / REPOSITORIES));
let turn = 0;
const tokens: TokenSource = {
  next: () => (fleet[turn++ % REPOSITORIES] as (typeof fleet)[number]).next(),
  get remaining() {
    return fleet.reduce((sum, reader) => sum + reader.remaining, 0);
  },
};

// wrangler.toml's build step bundles KEYWAY_POLICIES into build/policies.json: these policies, for this run.
process.env['KEYWAY_POLICIES'] = policiesDir;
// Loopback only: no request.cf data fetched from Cloudflare, no usage metrics sent.
process.env['CLOUDFLARE_CF_FETCH_ENABLED'] = 'false';
process.env['WRANGLER_SEND_METRICS'] = 'false';
const worker = await unstable_dev(join(ROOT, 'src/runtimes/workers/main.ts'), {
  config: join(ROOT, 'wrangler.toml'),
  ip: '127.0.0.1',
  port: 0,
  persistTo: join(root, 'state'),
  logLevel: 'none',
  vars: {
    // Not a loopback URL, so the Worker serves at 127.0.0.1; only a name in tokens (`iss`, `aud`).
    KEYWAY_ISSUER: BROKER_ISSUER,
    KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
    KEYWAY_MASTER_KEY: randomBytes(32).toString('base64'),
    // One identity from one address: the per-client and per-subject limits would hold the run; the global one stays on.
    KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '0',
    KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '0',
    ...(AUDIT_SHARDS === undefined ? {} : { KEYWAY_AUDIT_SHARDS: AUDIT_SHARDS }),
  },
  experimental: { disableExperimentalWarning: true },
});
const url = `http://127.0.0.1:${worker.port}`;

try {
  // An auditor's identity token exchanged for a keyway token that reads the audit log. The first also starts the broker in its isolate.
  const auditorExchange = async () => {
    const now = Math.floor(Date.now() / 1000);
    const identity = await people.sign({ iss: people.url, aud: BROKER_ISSUER, sub: 'auditor@acme.dev', iat: now, exp: now + 300, jti: crypto.randomUUID() });
    const answer = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${EXCHANGE}${identity}&audience=${encodeURIComponent(BROKER_ISSUER)}&scope=audit%3Aread`,
    });
    if (answer.status !== 200) throw new Error(`the Worker refused the auditor's exchange: ${answer.status} ${await answer.text()}`);
    return ((await answer.json()) as { access_token: string }).access_token;
  };
  await auditorExchange();

  let tokensOutsideGrants = 0;
  const onAnswer = (answer: Answer) => {
    if (answer.status !== 200 && answer.body.includes('access_token')) tokensOutsideGrants += 1;
  };
  const cpuBefore = workerdCpuMs();
  const load = await runLoad({ url, tokens, seconds: SECONDS, connections: CONNECTIONS, onAnswer });
  const cpuMs = workerdCpuMs() - cpuBefore;

  const auditToken = await auditorExchange();
  const listed = await (await fetch(`${url}/v1/audit/shards`, { headers: { authorization: `Bearer ${auditToken}` } })).json();
  const verify = await auditVerify(url, auditToken);
  const perShard = shardFigures(listed);
  const chains = (verify['chains'] ?? []) as { records: number; checkpoints: number }[];
  const summary = {
    bench: 'workers',
    shards: perShard.length,
    exchanges: load.answered,
    failures: load.failures,
    tokensOutsideGrants,
    exchangesPerSecond: Math.round(load.rate * 10) / 10,
    latencyMs: { p50: load.p50, p99: load.p99, max: load.max },
    workerdCpuMsPerExchange: load.answered === 0 ? null : Math.round((cpuMs / load.answered) * 100) / 100,
    appendsPerShard: perShard.map((shard) => shard.appends),
    // Milliseconds inside the shard object per append, as workerd's clock reads them (locally they move; deployed, only on I/O).
    cpuMsPerAppend: perShard.map((shard) => shard.cpuMsPerAppend),
    verify: {
      ok: verify['ok'],
      // Every shard's chain verified on its own and held to the root checkpoints; the records of them all.
      chains: chains.length,
      records: chains.reduce((sum, chain) => sum + chain.records, 0),
      checkpoints: chains.reduce((sum, chain) => sum + chain.checkpoints, 0),
      rootCheckpoints: verify['root_checkpoints'],
      ...(verify['problem'] === undefined ? {} : { problem: verify['problem'] }),
    },
  };
  console.log(JSON.stringify(summary));
  process.exitCode = summary.verify.ok === true && tokensOutsideGrants === 0 ? 0 : 1;
} finally {
  await worker.stop();
  await server.close();
  // Leave build/policies.json as every other build makes it: from policies/.
  delete process.env['KEYWAY_POLICIES'];
  const rebuilt = spawnSync(process.execPath, ['scripts/bundle-policies.ts'], { cwd: ROOT, encoding: 'utf8' });
  if (rebuilt.status !== 0) console.error(`build/policies.json could not be rebuilt from policies/: ${rebuilt.stderr}`);
}
