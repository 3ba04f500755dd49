// `npm run bench:revocation`: what checking revocation costs a service in verifyAccessToken, per
// verify, on BENCH_TOKENS distinct keyway tokens from a real broker on 127.0.0.1 (in this process,
// so its introspection work counts in the figures, as its round trip does). Three runs, one verify
// at a time: no check; the check on each token once (every verify introspects); the check on each
// token BENCH_REUSE times within the cache delay (what a service sees when a job calls it several
// times). The cache hit ratio is counted from the introspections actually sent.
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import '../src/runtimes/node/register-jsx.ts';
import { nodeConfigFromEnv } from '../src/config/node-config.ts';
import { silentLogger } from '../src/core/log.ts';
import { verifyAccessToken, type RevocationCheck } from '../src/core/mint/verify-access-token.ts';
import { envNumber } from './env-number.ts';
import { EXCHANGE, signTokenPool } from './exchange-load.ts';
import { startBenchIssuer } from './broker-process.ts';

const TOKENS = envNumber('BENCH_TOKENS', 1000);
const REUSE = envNumber('BENCH_REUSE', 10);
const CACHE_SECONDS = 30;
const AUDIENCE = 'https://deploy.acme.dev';
/** Exchanges in flight while the tokens are made: enough to be quick, few enough for a shared machine. */
const CONCURRENT_EXCHANGES = 8;

// After register-jsx: the broker's audit page is JSX.
const { startNodeBroker } = await import('../src/runtimes/node/start-node-broker.ts');
const { issuer, close: closeIssuer } = await startBenchIssuer();
// The service's introspection token is for the broker's issuer (its own URL here), which its policy names before it starts.
const port = await freePort();
const brokerIssuer = `http://127.0.0.1:${port}`;
const root = mkdtempSync(join(tmpdir(), 'keyway-bench-revocation-'));
mkdirSync(join(root, 'policies'));
const trust = `{ kind: oidc, url: "${issuer.url}" }`;
writeFileSync(join(root, 'policies/pipeline.yaml'), `version: 1\nissuer: ${trust}\nmatch: { sub: pipeline }\ngrant: { audience: ${AUDIENCE} }\n`);
writeFileSync(
  join(root, 'policies/service.yaml'),
  `version: 1\nissuer: ${trust}\nmatch: { sub: deploy-service }\ngrant: { audience: "${brokerIssuer}", scopes: [tokens:introspect] }\n`,
);
const broker = await startNodeBroker(
  nodeConfigFromEnv({
    PORT: String(port),
    KEYWAY_POLICIES: join(root, 'policies'),
    KEYWAY_DATA_DIR: join(root, 'data'),
    KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
    KEYWAY_WATCH_POLICIES: '0',
    KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '0',
    KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '0',
    KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '0',
  }),
  { log: silentLogger },
);

try {
  const exchange = async (subjectToken: string): Promise<string> => {
    const response = await fetch(`${brokerIssuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${EXCHANGE}${subjectToken}`,
    });
    const body = (await response.json()) as { access_token?: string; error?: string };
    if (body.access_token === undefined) throw new Error(`the broker refused an exchange: ${body.error}`);
    return body.access_token;
  };
  const accessTokens = async (sub: string, count: number): Promise<string[]> => {
    const subjects = await signTokenPool(issuer, brokerIssuer, { sub }, count, 600);
    const tokens: string[] = [];
    for (let start = 0; start < subjects.length; start += CONCURRENT_EXCHANGES) {
      tokens.push(...(await Promise.all(subjects.slice(start, start + CONCURRENT_EXCHANGES).map(exchange))));
    }
    return tokens;
  };
  const [credential] = await accessTokens('deploy-service', 1);
  const once = await accessTokens('pipeline', TOKENS);
  const reused = await accessTokens('pipeline', TOKENS);

  let introspections = 0;
  const revocation: RevocationCheck = {
    credential: () => credential as string,
    cacheSeconds: CACHE_SECONDS,
    fetch: (input, init) => {
      introspections += 1;
      return fetch(input, init);
    },
  };
  const options = { issuer: brokerIssuer, audience: AUDIENCE };
  // A warm-up lap without the check: the broker's JWKS fetched and cached, the verify path compiled, and the broker done with
  // the work its exchanges left behind (audit, alerts), so the first measured run is not charged for it.
  for (const token of reused) await verifyAccessToken(token, options);

  const measure = async (label: string, tokens: readonly string[], check: RevocationCheck | undefined) => {
    introspections = 0;
    const started = performance.now();
    for (const token of tokens) await verifyAccessToken(token, check === undefined ? options : { ...options, revocation: check });
    const micros = ((performance.now() - started) * 1000) / tokens.length;
    const hitRatio = check === undefined ? undefined : 1 - introspections / tokens.length;
    return { label, verifies: tokens.length, micros, introspections, hitRatio };
  };
  // Each token REUSE times, round robin: its first verify misses, the next REUSE - 1 (within the cache delay) hit.
  const rounds = Array.from({ length: REUSE }, () => reused).flat();
  const results = [
    await measure('no revocation check', once, undefined),
    await measure('check, each token once (every verify introspects)', once, revocation),
    await measure(`check, each token ${REUSE} times within cacheSeconds`, rounds, revocation),
  ];

  // The machine's load says how far to trust the µs: on a busy shared machine every figure grows.
  const load = `load average ${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} CPUs`;
  console.log(
    `revocation check in verifyAccessToken: ${TOKENS} distinct tokens per run, cacheSeconds ${CACHE_SECONDS}, loopback broker in this process, ${load}\n`,
  );
  console.log('| run | verifies | µs per verify | introspections | cache hit ratio |');
  console.log('|---|---:|---:|---:|---:|');
  for (const result of results) {
    const ratio = result.hitRatio === undefined ? '—' : result.hitRatio.toFixed(3);
    console.log(`| ${result.label} | ${result.verifies} | ${Math.round(result.micros)} | ${result.introspections} | ${ratio} |`);
  }
} finally {
  await broker.close();
  await closeIssuer();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as AddressInfo;
      server.close(() => resolve(free));
    });
  });
}
