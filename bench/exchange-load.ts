// Load for the benchmarks: CI tokens signed by the test issuer (test/support, on 127.0.0.1),
// posted to a broker's /token one token after the other from the pool. As fast as the broker
// answers: autocannon. At a fixed rate: evenly spaced requests (autocannon's rate limit sends
// each second's quota in a burst at its start, which measures bursts, not a steady rate).
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import { TestIssuer } from '../test/support/test-issuer.ts';

const FORM = 'application/x-www-form-urlencoded';
const EXCHANGE = 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&subject_token=';

/**
 * `count` distinct tokens carrying `claims`, valid for `lifetimeSeconds`. A token is exchanged
 * again once the pool wraps: nothing caches a verification, so each exchange does the full work.
 */
export async function signTokenPool(issuer: TestIssuer, audience: string, claims: Record<string, unknown>, count: number, lifetimeSeconds: number): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let start = 0; start < count; start += 64) {
    const batch = Array.from({ length: Math.min(64, count - start) }, (_, offset) =>
      issuer.sign({ iss: issuer.url, aud: audience, iat: now, nbf: now - 5, exp: now + lifetimeSeconds, jti: crypto.randomUUID(), ...claims, run_id: String(start + offset) }),
    );
    tokens.push(...(await Promise.all(batch)));
  }
  return tokens;
}

/** One exchange's answer, as the soak checks it. */
export interface Answer {
  readonly at: number;
  readonly status: number;
  readonly body: string;
}

export interface LoadOptions {
  readonly url: string;
  readonly tokens: readonly string[];
  readonly seconds: number;
  readonly connections: number;
  /** Requests per second over all connections; unset: as fast as the broker answers. */
  readonly rate?: number;
  /** Called with every answer. */
  readonly onAnswer?: (answer: Answer) => void;
}

export interface LoadResult {
  /** 2xx answers per second. */
  readonly rate: number;
  readonly answered: number;
  /** Latency of 2xx answers in milliseconds (as fast as possible: autocannon's histogram, whole milliseconds; at a fixed rate: from each request's scheduled send time, so a late send counts against the broker). */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Non-2xx answers, socket errors and timeouts. */
  readonly failures: number;
}

/** A cursor over the pool shared by every run, so consecutive runs keep rotating through it. */
let next = 0;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  return options.rate === undefined ? await runUnpaced(options) : await runPaced(options, options.rate);
}

async function runUnpaced(options: LoadOptions): Promise<LoadResult> {
  const { onAnswer } = options;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    requests: [
      {
        method: 'POST',
        path: '/token',
        headers: { 'content-type': FORM },
        setupRequest: (request) => ({ ...request, body: EXCHANGE + options.tokens[next++ % options.tokens.length] }),
        ...(onAnswer === undefined ? {} : { onResponse: (status: number, body: string) => onAnswer({ at: Date.now(), status, body }) }),
      },
    ],
  });
  return {
    rate: result['2xx'] / (result.duration as number),
    answered: result['2xx'],
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

const REQUEST_TIMEOUT_MS = 10_000;
const MAX_SOCKETS = 256;

/**
 * Open loop: request n is due at start + n/rate whatever the broker is doing, and its latency
 * counts from then (a request waiting for a free connection is late, not excused). Kept-alive
 * connections, `connections` of them idle at most and MAX_SOCKETS open at most.
 */
async function runPaced(options: LoadOptions, rate: number): Promise<LoadResult> {
  const target = new URL('/token', options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: options.connections });
  const total = Math.round(rate * options.seconds);
  const latencies: number[] = [];
  let failures = 0;
  let settled = 0;
  let sent = 0;
  const start = performance.now();
  const scheduledAt = (index: number) => start + (index * 1000) / rate;
  await new Promise<void>((resolve) => {
    const settle = () => {
      settled += 1;
      if (settled === total) resolve();
    };
    const send = (scheduled: number) => {
      let done = false;
      const body = EXCHANGE + options.tokens[next++ % options.tokens.length];
      const req = request(target, { method: 'POST', agent, timeout: REQUEST_TIMEOUT_MS, headers: { 'content-type': FORM, 'content-length': Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (done) return;
          done = true;
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) latencies.push(performance.now() - scheduled);
          else failures += 1;
          options.onAnswer?.({ at: Date.now(), status, body: Buffer.concat(chunks).toString() });
          settle();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', () => {
        if (done) return;
        done = true;
        failures += 1;
        settle();
      });
      req.end(body);
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      while (sent < due) send(scheduledAt(sent++));
      if (sent < total) setTimeout(tick, Math.max(0, scheduledAt(sent) - performance.now()));
    };
    if (total === 0) resolve();
    else tick();
  });
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const percentile = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? Number.NaN).toFixed(2));
  return {
    rate: latencies.length / Math.max(options.seconds, (performance.now() - start) / 1000),
    answered: latencies.length,
    p50: percentile(0.5),
    p99: percentile(0.99),
    max: Number((latencies.at(-1) ?? Number.NaN).toFixed(2)),
    failures,
  };
}

/** Exchanges `count` tokens one at a time, failing on any refusal: the JWKS fetch, JIT and caches before a measured run. */
export async function warmUp(url: string, tokens: readonly string[], count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    const response = await fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': FORM }, body: EXCHANGE + tokens[next++ % tokens.length] });
    if (response.status !== 200) throw new Error(`warm-up exchange answered ${response.status}: ${await response.text()}`);
  }
}
