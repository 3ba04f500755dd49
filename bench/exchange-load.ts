// Load for the benchmarks: CI tokens signed by the test issuer (test/support, on 127.0.0.1),
// posted to a broker's /token one after the other, from a pool that wraps (soak, bench:audit)
// or a supply that never repeats a token to a broker (npm run bench). As fast as the broker
// answers: autocannon. At a fixed rate: evenly spaced requests (autocannon's rate limit sends
// each second's quota in a burst at its start, which measures bursts, not a steady rate).
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import type { TestIssuer } from '../test/support/test-issuer.ts';

const FORM = 'application/x-www-form-urlencoded';
/** The body of an exchange, up to its subject token. */
export const EXCHANGE =
  'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&subject_token=';

const SIGN_BATCH = 500;
/** Numbers the tokens' `run_id` across every pool and supply of the process. */
let serial = 0;

/** `count` distinct tokens carrying `claims` (each its own `jti` and `run_id`), valid for `lifetimeSeconds`. */
export async function signTokenPool(
  issuer: TestIssuer,
  audience: string,
  claims: Record<string, unknown>,
  count: number,
  lifetimeSeconds: number,
): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let start = 0; start < count; start += SIGN_BATCH) {
    const batch = Array.from({ length: Math.min(SIGN_BATCH, count - start) }, () => ({
      iss: issuer.url,
      aud: audience,
      iat: now,
      nbf: now - 5,
      exp: now + lifetimeSeconds,
      ...claims,
      jti: crypto.randomUUID(),
      run_id: String(serial++),
    }));
    tokens.push(...(await issuer.signMany(batch)));
  }
  return tokens;
}

/** The subject tokens a load posts: each call to next() gives the one to send. */
export interface TokenSource {
  next(): string;
  /** How many more next() hands out (Infinity: no end). */
  readonly remaining: number;
}

/** A source that signs its tokens ahead: `reserve(count)` makes sure `count` more are there. */
export interface TokenReader extends TokenSource {
  reserve(count: number): Promise<void>;
}

/** The first `count` tokens of `tokens`, as a source that says it has no more after them. */
export function firstTokens(tokens: TokenSource, count: number): TokenSource {
  let left = count;
  return {
    next: () => {
      left -= 1;
      return tokens.next();
    },
    get remaining() {
      return Math.min(left, tokens.remaining);
    },
  };
}

/** A fixed pool exchanged round and round (soak, bench:audit): once it wraps, a token is posted again. */
export function cycle(tokens: readonly string[]): TokenSource {
  let next = 0;
  return { next: () => tokens[next++ % tokens.length] as string, remaining: Number.POSITIVE_INFINITY };
}

/**
 * Tokens that are never posted twice to the same broker (npm run bench), as real pipelines send
 * them: whatever a broker caches, no exchange finds its token there. Signing an RS256 token costs
 * far more than verifying one, so tokens are signed ahead, between runs, as many as the next run
 * may use (`reserve`), never during a measured run. Each broker reads through its own `reader()`;
 * brokers with the same claims share the signed tokens, since no cache spans two processes.
 */
export class TokenSupply {
  readonly #tokens: string[] = [];
  readonly #sign: (count: number) => Promise<string[]>;

  constructor(issuer: TestIssuer, audience: string, claims: Record<string, unknown>, lifetimeSeconds: number) {
    this.#sign = (count) => signTokenPool(issuer, audience, claims, count, lifetimeSeconds);
  }

  /** How many tokens were signed so far. */
  get signed(): number {
    return this.#tokens.length;
  }

  /** Tokens for one broker, each at most once; next() throws rather than hand one out again. */
  reader(): TokenReader {
    let position = 0;
    const tokens = this.#tokens;
    const sign = this.#sign;
    return {
      next: () => {
        const token = tokens[position];
        if (token === undefined) throw new Error(`the token supply ran dry after ${position} tokens: reserve() before a run`);
        position += 1;
        return token;
      },
      get remaining() {
        return tokens.length - position;
      },
      reserve: async (count: number) => {
        const missing = position + count - tokens.length;
        if (missing > 0) for (const token of await sign(missing)) tokens.push(token);
      },
    };
  }
}

/** One exchange's answer, as the soak checks it. */
export interface Answer {
  readonly at: number;
  readonly status: number;
  readonly body: string;
}

export interface LoadOptions {
  readonly url: string;
  /** A finite source ends an as-fast-as-possible run early when it runs dry (the rate stays right: it is timed to the last answer). */
  readonly tokens: TokenSource;
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
  /** At a fixed rate only: every 2xx answer's latency in milliseconds, sorted, so that runs can be taken together. */
  readonly latenciesMs?: readonly number[];
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  return options.rate === undefined ? await runUnpaced(options) : await runPaced(options, options.rate);
}

async function runUnpaced(options: LoadOptions): Promise<LoadResult> {
  const { onAnswer, tokens } = options;
  // autocannon caps each connection at its share of maxOverallRequests; a share of 0 would mean no cap.
  if (tokens.remaining < options.connections) throw new Error(`${tokens.remaining} tokens left for ${options.connections} connections`);
  const started = performance.now();
  let lastAnswer = started;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    ...(Number.isFinite(tokens.remaining) ? { maxOverallRequests: tokens.remaining } : {}),
    requests: [
      {
        method: 'POST',
        path: '/token',
        headers: { 'content-type': FORM },
        setupRequest: (request) => ({ ...request, body: EXCHANGE + tokens.next() }),
        onResponse: (status: number, body: string) => {
          lastAnswer = performance.now();
          onAnswer?.({ at: Date.now(), status, body });
        },
      },
    ],
  });
  return {
    // autocannon's own duration runs to its next 1 s sample after the last connection is done.
    rate: result['2xx'] / ((lastAnswer - started) / 1000),
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
  if (options.tokens.remaining < total) throw new Error(`${options.tokens.remaining} tokens left for ${total} requests`);
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
      const body = EXCHANGE + options.tokens.next();
      const req = request(
        target,
        { method: 'POST', agent, timeout: REQUEST_TIMEOUT_MS, headers: { 'content-type': FORM, 'content-length': Buffer.byteLength(body) } },
        (res) => {
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
        },
      );
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
  return {
    rate: latencies.length / Math.max(options.seconds, (performance.now() - start) / 1000),
    answered: latencies.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: Number((latencies.at(-1) ?? Number.NaN).toFixed(2)),
    failures,
    latenciesMs: latencies,
  };
}

/** The `p` quantile (0 to 1) of latencies sorted ascending, in milliseconds to two decimals; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  return Number((sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN).toFixed(2));
}

/** Exchanges `count` tokens one at a time, failing on any refusal: the JWKS fetch, JIT and caches before a measured run. */
export async function warmUp(url: string, tokens: TokenSource, count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    const response = await fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': FORM }, body: EXCHANGE + tokens.next() });
    if (response.status !== 200) throw new Error(`warm-up exchange answered ${response.status}: ${await response.text()}`);
  }
}
