import { timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { CiTokenError } from './ci-token-sources.ts';
import { describeNetworkError } from './retrying-fetch.ts';
import { GH_LOCALHOST_API } from './proxy-environment.ts';
import { connectionNamed, isHopByHop } from '../../features/proxy/hop-by-hop.ts';
import { rewriteLinkTargets } from '../../features/proxy/forward-headers.ts';

const GH_LOCALHOST_AUTHORITY = /^api\.github\.localhost(:80)?$/i;

export interface ForwarderOptions {
  /** The broker's URL: requests go to `{broker}/proxy/{upstream}/…`. */
  readonly broker: URL;
  readonly upstream: string;
  /** The per-run secret the command presents (see docs/proxy.md, "In the pipeline"): not a GitHub credential. */
  readonly secret: string;
  /** The job's identity for each request: a fresh CI token. */
  readonly ciToken: () => Promise<string>;
  /** Job log lines; never given a token or the secret. */
  readonly log: (line: string) => void;
  /** How long the broker may stay silent (connect, answer, each chunk) before the request fails. */
  readonly idleTimeoutMs: number;
}

export interface ForwarderCounts {
  forwarded: number;
  /** Answers that carried `Keyway-Error`: the broker refused or failed, the upstream was not called or not trusted. */
  refusedByBroker: number;
  /** Requests this forwarder answered itself, without calling the broker. */
  refusedHere: number;
}

export interface Forwarder {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly counts: Readonly<ForwarderCounts>;
  close(): Promise<void>;
}

/** The forwarder's own refusals, shaped like the broker's: `Keyway-Error: <code>` and an RFC 6749-style JSON body. */
const REFUSALS = {
  forwarder_unauthenticated: [401, 'invalid_client', 'send the per-run secret of `keyway proxy` ($KEYWAY_PROXY_SECRET) as the bearer token'],
  forwarder_host_refused: [403, 'access_denied', `this forwarder is not an open proxy: it serves ${GH_LOCALHOST_API} and its own address only`],
  forwarder_path_refused: [400, 'invalid_request', 'the path has dot segments or characters a URL parser would rewrite; send it as the upstream expects it'],
  ci_token_unavailable: [503, 'temporarily_unavailable', 'the job has no CI token to prove its identity with'],
  broker_unavailable: [502, 'temporarily_unavailable', 'the broker could not be reached'],
} as const satisfies Record<string, readonly [number, string, string]>;
type RefusalCode = keyof typeof REFUSALS;

/** Request headers that identify the caller or its machine: the broker sees the job's identity and nothing else. */
const CALLER_HEADERS = new Set(['host', 'authorization', 'cookie', 'forwarded', 'via']);
const MAX_LOGGED_ERROR_BYTES = 16 * 1024;

/**
 * A local HTTP forwarder on 127.0.0.1 for one command: each request that presents the per-run
 * secret goes to `{broker}/proxy/{upstream}{path}` with the job's CI token instead, and the
 * answer streams back as it came. It is not an open proxy: it sends only to the broker, only under
 * the upstream's prefix, and refuses any path a URL parser would rewrite (dot segments in any
 * encoding, backslashes), so no request can reach another broker route.
 */
export async function startForwarder(options: ForwarderOptions): Promise<Forwarder> {
  const counts: ForwarderCounts = { forwarded: 0, refusedByBroker: 0, refusedHere: 0 };
  const refuse = (response: ServerResponse, what: string, code: RefusalCode, detail?: string): void => {
    counts.refusedHere += 1;
    const [status, error, description] = REFUSALS[code];
    const text = detail === undefined ? description : `${description}: ${detail}`;
    options.log(`refused here: ${what} → HTTP ${status} ${code}: ${text}`);
    response.writeHead(status, { 'content-type': 'application/json', 'keyway-error': code, 'cache-control': 'no-store' });
    response.end(JSON.stringify({ error, error_description: text }));
  };

  const server = createServer((request, response) => {
    const own = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    forward(request, response, { ...options, own }, counts, refuse).catch((error: unknown) => {
      if (!response.headersSent) return refuse(response, describe(request), 'broker_unavailable', (error as Error).message);
      response.destroy();
    });
  });
  // CONNECT would tunnel TLS to any host: refused, like every host but GitHub's alias.
  server.on('connect', (request: IncomingMessage, socket: Socket) => {
    counts.refusedHere += 1;
    options.log(`refused here: CONNECT ${request.url ?? ''} → HTTP 403 forwarder_host_refused`);
    socket.end('HTTP/1.1 403 Forbidden\r\nkeyway-error: forwarder_host_refused\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function forward(
  request: IncomingMessage,
  response: ServerResponse,
  options: ForwarderOptions & { readonly own: string },
  counts: ForwarderCounts,
  refuse: (response: ServerResponse, what: string, code: RefusalCode, detail?: string) => void,
): Promise<void> {
  const what = describe(request);
  // The host first: another tool's plain-http request through HTTP_PROXY carries no secret, and is told the forwarder is no open proxy.
  const requested = requestedPath(request.url ?? '');
  if (requested === undefined) return refuse(response, what, 'forwarder_host_refused');
  if (!presentsSecret(request.headers.authorization, options.secret)) return refuse(response, what, 'forwarder_unauthenticated');
  const target = brokerTarget(options.broker, options.upstream, requested);
  if (target === undefined) return refuse(response, what, 'forwarder_path_refused');

  let ciToken: string;
  try {
    ciToken = await options.ciToken();
  } catch (error) {
    // A refusal of the token service, or the service out of reach after its retries: either way no identity to send.
    return refuse(response, what, 'ci_token_unavailable', error instanceof CiTokenError ? error.message : describeNetworkError(error));
  }
  const answer = await send(target, request, { ...outboundHeaders(request.headers), authorization: `Bearer ${ciToken}` }, options.idleTimeoutMs);
  counts.forwarded += 1;
  // Where the command called: gh's api.github.localhost through HTTP_PROXY, or this forwarder's own address.
  const calledAt = request.url?.startsWith('/') === true ? options.own : `http://${GH_LOCALHOST_API}`;
  response.writeHead(answer.statusCode ?? 502, passedBack(answer.headers, proxyBase(options.broker, options.upstream), calledAt));
  const keywayError = answer.headers['keyway-error'];
  if (typeof keywayError !== 'string') return pipeline(answer, response);

  counts.refusedByBroker += 1;
  const start: Buffer[] = [];
  let kept = 0;
  answer.on('data', (chunk: Buffer) => {
    if (kept < MAX_LOGGED_ERROR_BYTES) start.push(chunk.subarray(0, MAX_LOGGED_ERROR_BYTES - kept));
    kept += chunk.length;
  });
  await pipeline(answer, response);
  options.log(`refused by the broker: ${what} → HTTP ${answer.statusCode} ${keywayError}${errorDetail(Buffer.concat(start).toString('utf8'))}`);
}

/** `METHOD /path` for the job log: the query and an absolute-form URL's user info are left out (they may carry anything). */
function describe(request: IncomingMessage): string {
  const url = request.url ?? '';
  return `${request.method} ${url.split('?')[0]!.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1')}`;
}

/** `Bearer S`, `token S` (gh's scheme) or Basic with S as the password (git's): S compared in constant time. */
function presentsSecret(authorization: string | undefined, secret: string): boolean {
  if (authorization === undefined) return false;
  const [, scheme = '', value = ''] = /^(\S+)\s+(\S+)$/.exec(authorization.trim()) ?? [];
  let presented: string | undefined;
  if (/^(bearer|token)$/i.test(scheme)) presented = value;
  else if (/^basic$/i.test(scheme)) presented = Buffer.from(value, 'base64').toString('utf8').split(':').slice(1).join(':');
  if (presented === undefined) return false;
  const given = Buffer.from(presented);
  const expected = Buffer.from(secret);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The path and query asked for: origin-form (`/repos/…`, the command called this address) or
 * absolute-form for gh's `api.github.localhost` (the command called it through HTTP_PROXY).
 * Undefined for any other host: the forwarder is not an open proxy.
 */
function requestedPath(target: string): string | undefined {
  if (target.startsWith('/')) return target;
  const absolute = /^http:\/\/([^/?#]+)(.*)$/i.exec(target);
  if (absolute === null) return undefined;
  const [, authority = '', rest = ''] = absolute;
  if (!GH_LOCALHOST_AUTHORITY.test(authority)) return undefined;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * `{broker}/proxy/{upstream}{path}{query}`, or undefined when the URL parser would rewrite what
 * was asked (dot segments in any encoding, backslashes, characters it escapes): what the broker
 * sees is exactly what the command sent, and it stays under the upstream's prefix.
 */
export function brokerTarget(broker: URL, upstream: string, requested: string): URL | undefined {
  const at = requested.indexOf('?');
  const path = at === -1 ? requested : requested.slice(0, at);
  const query = at === -1 || at === requested.length - 1 ? '' : requested.slice(at);
  const prefix = proxyPrefix(broker, upstream);
  const target = new URL(`${prefix}${path}${query}`, broker.origin);
  if (target.origin !== broker.origin || target.pathname !== `${prefix}${path}` || target.search !== query) return undefined;
  return target;
}

/** Every end-to-end header but the caller's credentials and address: hop-by-hop ones, those `Connection` names, cookies, X-Forwarded-*. */
function outboundHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionNamed(headers.connection);
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !isHopByHop(name, named) && !CALLER_HEADERS.has(name) && !name.startsWith('x-forwarded-')),
  );
}

const proxyPrefix = (broker: URL, upstream: string): string => `${broker.pathname.replace(/\/$/, '')}/proxy/${upstream}`;
const proxyBase = (broker: URL, upstream: string): string => `${broker.origin}${proxyPrefix(broker, upstream)}`;

/**
 * The broker's answer as it came, but for its hop-by-hop headers, and with a `Link` or `Location` that leads back
 * through the broker's proxy route (GitHub's next page, a redirect within the upstream) leading back through this
 * forwarder, where the command called: followed, it carries the per-run secret to the forwarder, never to the broker.
 */
function passedBack(headers: IncomingHttpHeaders, brokerBase: string, calledAt: string): OutgoingHttpHeaders {
  const named = connectionNamed(headers.connection);
  const throughHere = (url: string): string =>
    url === brokerBase || url.startsWith(`${brokerBase}/`) || url.startsWith(`${brokerBase}?`) ? `${calledAt}${url.slice(brokerBase.length)}` : url;
  const passed: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (isHopByHop(name, named) || value === undefined) continue;
    if (name === 'location' && typeof value === 'string') passed[name] = throughHere(value);
    else if (name === 'link' && typeof value === 'string') passed[name] = rewriteLinkTargets(value, throughHere);
    else passed[name] = value;
  }
  return passed;
}

function send(target: URL, body: IncomingMessage, headers: OutgoingHttpHeaders, idleTimeoutMs: number): Promise<IncomingMessage> {
  const outbound = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: body.method, headers, timeout: idleTimeoutMs });
  return new Promise((resolve, reject) => {
    outbound.once('response', resolve).once('error', reject);
    outbound.once('timeout', () => outbound.destroy(new Error(`${target.origin} did not answer within ${idleTimeoutMs / 1000} s`)));
    pipeline(body, outbound).catch(reject);
  });
}

/** ` error: description (audit_event_id=…)` from keyway's JSON error body, when it is one. */
function errorDetail(text: string): string {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const parts = [
      typeof body['error'] === 'string' ? `${body['error']}` : undefined,
      typeof body['error_description'] === 'string' ? `: ${body['error_description']}` : undefined,
      typeof body['audit_event_id'] === 'string' ? ` (audit_event_id=${body['audit_event_id']})` : undefined,
    ].filter((part) => part !== undefined);
    return parts.length === 0 ? '' : ` ${parts.join('')}`;
  } catch {
    return '';
  }
}
