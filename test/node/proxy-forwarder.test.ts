import { createServer, request, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CiTokenError } from '../../src/cli/pipeline/ci-token-sources.ts';
import { proxyEnvironment, WITHHELD_VARIABLES } from '../../src/cli/pipeline/proxy-environment.ts';
import { startForwarder, type Forwarder } from '../../src/cli/pipeline/proxy-forwarder.ts';

const SECRET = 'per-run-secret-0123456789abcdefghijklmnopqrstuv';
const CI_TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.c2lnbmF0dXJl';

interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A raw HTTP/1.1 request: the path goes on the request line exactly as given (fetch would normalise it). */
function send(forwarder: Forwarder, method: string, path: string, headers: OutgoingHttpHeaders = {}, body?: string): Promise<Answer> {
  const { port } = new URL(forwarder.url);
  return new Promise((resolve, reject) => {
    const outbound = request({ host: '127.0.0.1', port, method, path, headers }, async (response) =>
      resolve({ status: response.statusCode ?? 0, headers: response.headers, body: await text(response) }),
    );
    outbound.once('error', reject);
    outbound.end(body);
  });
}

const bearer = { authorization: `Bearer ${SECRET}` };

/**
 * The forwarder `keyway proxy` starts, in front of a stand-in broker on 127.0.0.1 that records each
 * request exactly as it arrived (raw path, every header, the body) and answers as a test says.
 */
describe('the proxy forwarder', () => {
  let broker: Server;
  let brokerUrl: URL;
  const received: Received[] = [];
  type Reply = { status: number; headers?: Record<string, string>; body?: string };
  let answer: (request: Received) => Reply = () => ({ status: 200, body: '{}' });
  const lines: string[] = [];
  let forwarder: Forwarder;
  let ciToken: () => Promise<string> = async () => CI_TOKEN;

  beforeAll(async () => {
    broker = createServer(async (incoming, response) => {
      const seen = { method: incoming.method ?? '', path: incoming.url ?? '', headers: incoming.headers, body: await text(incoming) };
      received.push(seen);
      const { status, headers = {}, body = '' } = answer(seen);
      response.writeHead(status, headers).end(body);
    });
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    brokerUrl = new URL(`http://127.0.0.1:${(broker.address() as AddressInfo).port}/keyway`);
    forwarder = await startForwarder({
      broker: brokerUrl,
      upstream: 'github',
      secret: SECRET,
      ciToken: () => ciToken(),
      log: (line) => lines.push(line),
      idleTimeoutMs: 5000,
    });
  });
  afterAll(async () => {
    await forwarder?.close();
    await new Promise((resolve) => broker?.close(resolve));
  });
  afterEach(() => {
    received.length = 0;
    lines.length = 0;
    answer = () => ({ status: 200, body: '{}' });
    ciToken = async () => CI_TOKEN;
  });

  const expectRefusedHere = (result: Answer, status: number, code: string, error: string) => {
    expect(result.status).toBe(status);
    expect(result.headers['keyway-error']).toBe(code);
    const body = JSON.parse(result.body) as Record<string, unknown>;
    expect(body).toMatchObject({ error });
    expect(body).not.toHaveProperty('access_token');
    expect(result.body).not.toContain(CI_TOKEN);
    expect(received).toEqual([]);
  };

  it('refuses a request without this run’s secret, or with another one, and calls nothing', async () => {
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    for (const authorization of [
      undefined,
      'Bearer wrong',
      `Bearer ${SECRET}x`,
      `token ${SECRET.slice(1)}`,
      basic('x-access-token', 'wrong'),
      basic(SECRET, ''),
      `Digest ${SECRET}`,
    ]) {
      const result = await send(forwarder, 'GET', '/repos/acme/app', authorization === undefined ? {} : { authorization });
      expectRefusedHere(result, 401, 'forwarder_unauthenticated', 'invalid_client');
    }
    expect(lines).toHaveLength(7);
    expect(lines[0]).toMatch(/^refused here: GET \/repos\/acme\/app → HTTP 401 forwarder_unauthenticated: /);
    expect(lines.join('\n')).not.toContain(SECRET);
  });

  it.each([
    ['/../../token'],
    ['/repos/../../../introspect'],
    ['/%2e%2e/%2E%2E/token'],
    ['/.%2e/.%2E/token'],
    ['/%2E./x'],
    ['/repos/./acme'],
    ['/repos/acme/app/.'],
    ['/repos\\..\\..\\token'],
    ['/repos/{owner}'],
    ['/repos/acme?q="x"'],
  ])('refuses %s, a path or query a URL parser would rewrite, before it reaches the broker', async (path) => {
    const result = await send(forwarder, 'GET', path, bearer);
    expectRefusedHere(result, 400, 'forwarder_path_refused', 'invalid_request');
    expect(lines).toEqual([expect.stringMatching(/^refused here: GET .* → HTTP 400 forwarder_path_refused: /)]);
  });

  it.each([
    ['http://example.com/repos/acme/app'],
    ['http://api.github.localhost.example.com/repos/acme/app'],
    ['http://user@api.github.localhost/repos/acme/app'],
    ['http://api.github.localhost:8080/repos/acme/app'],
    ['http://github.localhost/repos/acme/app'],
  ])('is not an open proxy: refuses the absolute-form request for %s', async (target) => {
    const result = await send(forwarder, 'GET', target, bearer);
    expectRefusedHere(result, 403, 'forwarder_host_refused', 'access_denied');
  });

  it('answers another tool’s plain-http request through HTTP_PROXY, which carries no secret, 403 forwarder_host_refused (as docs/ci/proxy.md says)', async () => {
    const result = await send(forwarder, 'GET', 'http://mirror.internal/simple/left-pad/');
    expectRefusedHere(result, 403, 'forwarder_host_refused', 'access_denied');
    expect(lines).toEqual([expect.stringMatching(/^refused here: GET http:\/\/mirror\.internal\/simple\/left-pad\/ → HTTP 403 forwarder_host_refused: /)]);
    // A URL's user info (another tool's credential) never reaches the job log.
    lines.length = 0;
    expectRefusedHere(await send(forwarder, 'GET', 'http://ci:mirror-password@mirror.internal/simple/'), 403, 'forwarder_host_refused', 'access_denied');
    expect(lines).toEqual([expect.stringMatching(/^refused here: GET http:\/\/mirror\.internal\/simple\/ → HTTP 403 /)]);
  });

  it('refuses CONNECT: no tunnel to anywhere', async () => {
    const { port } = new URL(forwarder.url);
    const status = await new Promise<number>((resolve, reject) => {
      const tunnel = request({ host: '127.0.0.1', port, method: 'CONNECT', path: 'api.github.com:443', headers: bearer });
      tunnel.once('connect', (response, socket) => {
        socket.destroy();
        resolve(response.statusCode ?? 0);
      });
      tunnel.once('error', reject);
      tunnel.end();
    });
    expect(status).toBe(403);
    expect(received).toEqual([]);
    expect(lines).toEqual(['refused here: CONNECT api.github.com:443 → HTTP 403 forwarder_host_refused']);
  });

  it('forwards to {broker}/proxy/github/… with the CI token in place of the secret, without the caller’s cookies, forwarding or hop-by-hop headers', async () => {
    answer = () => ({
      status: 201,
      headers: { 'content-type': 'application/json', 'x-github-request-id': 'ABC', 'keep-alive': 'timeout=5' },
      body: '{"id":1}',
    });
    const result = await send(
      forwarder,
      'POST',
      '/repos/acme/app/issues/7/comments?per_page=1',
      {
        ...bearer,
        'content-type': 'application/json',
        cookie: 'session=abc',
        'x-forwarded-for': '10.0.0.1',
        forwarded: 'for=10.0.0.1',
        connection: 'x-hop',
        'x-hop': 'dropped',
        accept: 'application/vnd.github+json',
      },
      '{"body":"built"}',
    );
    expect(result).toMatchObject({ status: 201, body: '{"id":1}' });
    expect(result.headers['x-github-request-id']).toBe('ABC');
    expect(result.headers['keyway-error']).toBeUndefined();
    expect(received).toHaveLength(1);
    const [seen] = received as [Received];
    expect(seen).toMatchObject({ method: 'POST', path: '/keyway/proxy/github/repos/acme/app/issues/7/comments?per_page=1', body: '{"body":"built"}' });
    expect(seen.headers).toMatchObject({ authorization: `Bearer ${CI_TOKEN}`, accept: 'application/vnd.github+json', 'content-type': 'application/json' });
    for (const name of ['cookie', 'x-forwarded-for', 'forwarded', 'x-hop']) expect(seen.headers).not.toHaveProperty(name);
    expect(JSON.stringify(seen.headers)).not.toContain(SECRET);
    expect(lines).toEqual([]);
    expect(forwarder.counts.forwarded).toBeGreaterThan(0);
  });

  it('forwards gh’s absolute-form request for api.github.localhost (through HTTP_PROXY), with gh’s `token` scheme or git’s Basic', async () => {
    const basic = `Basic ${Buffer.from(`x-access-token:${SECRET}`).toString('base64')}`;
    for (const authorization of [`token ${SECRET}`, basic]) {
      const result = await send(forwarder, 'GET', 'http://api.github.localhost/repos/acme/app', { authorization, host: 'api.github.localhost' });
      expect(result.status).toBe(200);
    }
    const graphql = await send(
      forwarder,
      'POST',
      'http://API.github.localhost:80/graphql',
      { authorization: `token ${SECRET}` },
      '{"query":"{viewer{login}}"}',
    );
    expect(graphql.status).toBe(200);
    expect(received.map(({ method, path, headers }) => [method, path, headers.authorization, headers.host])).toEqual([
      ['GET', '/keyway/proxy/github/repos/acme/app', `Bearer ${CI_TOKEN}`, brokerUrl.host],
      ['GET', '/keyway/proxy/github/repos/acme/app', `Bearer ${CI_TOKEN}`, brokerUrl.host],
      ['POST', '/keyway/proxy/github/graphql', `Bearer ${CI_TOKEN}`, brokerUrl.host],
    ]);
  });

  it('passes the broker’s Keyway-Error refusal back as it came and names it in the job log; an upstream’s own error passes without a line', async () => {
    const refusal = {
      error: 'access_denied',
      error_description: 'no allow rule of grant.proxy matches DELETE /repos/acme/app',
      audit_event_id: '01JF0000000000000000000000',
    };
    answer = ({ method }): Reply =>
      method === 'DELETE'
        ? { status: 403, headers: { 'content-type': 'application/json', 'keyway-error': 'proxy_request_denied' }, body: JSON.stringify(refusal) }
        : { status: 404, headers: { 'content-type': 'application/json' }, body: '{"message":"Not Found"}' };
    const refused = await send(forwarder, 'DELETE', '/repos/acme/app?why=1', bearer);
    expect(refused.status).toBe(403);
    expect(refused.headers['keyway-error']).toBe('proxy_request_denied');
    expect(JSON.parse(refused.body)).toEqual(refusal);
    const missing = await send(forwarder, 'GET', '/repos/acme/gone', bearer);
    expect(missing).toMatchObject({ status: 404, body: '{"message":"Not Found"}' });
    expect(missing.headers['keyway-error']).toBeUndefined();
    expect(lines).toEqual([
      'refused by the broker: DELETE /repos/acme/app → HTTP 403 proxy_request_denied access_denied: no allow rule of grant.proxy matches DELETE /repos/acme/app (audit_event_id=01JF0000000000000000000000)',
    ]);
  });

  it('answers 503 ci_token_unavailable when the job has no CI token, and 502 broker_unavailable when the broker cannot be reached', async () => {
    ciToken = async () => {
      throw new CiTokenError('GitHub Actions offers this job no OIDC token');
    };
    expectRefusedHere(await send(forwarder, 'GET', '/repos/acme/app', bearer), 503, 'ci_token_unavailable', 'temporarily_unavailable');
    expect(lines).toEqual([
      expect.stringContaining('ci_token_unavailable: the job has no CI token to prove its identity with: GitHub Actions offers this job no OIDC token'),
    ]);
    // The token service out of reach after its retries is the same: no identity to send, and no call made.
    ciToken = async () => {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    };
    expectRefusedHere(await send(forwarder, 'GET', '/repos/acme/app', bearer), 503, 'ci_token_unavailable', 'temporarily_unavailable');
    expect(lines[1]).toContain('ci_token_unavailable: the job has no CI token to prove its identity with: fetch failed (ECONNREFUSED)');

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const nowhere = new URL(`http://127.0.0.1:${(closed.address() as AddressInfo).port}`);
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = await startForwarder({
      broker: nowhere,
      upstream: 'github',
      secret: SECRET,
      ciToken: async () => CI_TOKEN,
      log: (line) => lines.push(line),
      idleTimeoutMs: 5000,
    });
    try {
      expectRefusedHere(await send(unreachable, 'GET', '/repos/acme/app', bearer), 502, 'broker_unavailable', 'temporarily_unavailable');
    } finally {
      await unreachable.close();
    }
  });
});

describe("the proxied command's environment", () => {
  it('withholds GitHub credentials, the Actions token service and any variable holding the CI token; points gh and REST clients at the forwarder', () => {
    const parent = {
      PATH: '/usr/bin',
      GITHUB_TOKEN: 'ghs_real',
      GH_TOKEN: 'ghp_real',
      GH_ENTERPRISE_TOKEN: 'ghe',
      GITHUB_ENTERPRISE_TOKEN: 'ghe2',
      ACTIONS_ID_TOKEN_REQUEST_URL: 'https://token.actions/x',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
      ACTIONS_RUNTIME_TOKEN: 'runtime',
      KEYWAY_ID_TOKEN: `${CI_TOKEN}\n`,
      GITHUB_REPOSITORY: 'acme/app',
    };
    const env = proxyEnvironment(parent, { url: 'http://127.0.0.1:4567', secret: SECRET }, [CI_TOKEN], 'github');
    expect(env).toEqual({
      PATH: '/usr/bin',
      GITHUB_REPOSITORY: 'acme/app',
      KEYWAY_PROXY_URL: 'http://127.0.0.1:4567',
      KEYWAY_PROXY_SECRET: SECRET,
      GITHUB_API_URL: 'http://127.0.0.1:4567',
      GITHUB_GRAPHQL_URL: 'http://127.0.0.1:4567/graphql',
      GITHUB_TOKEN: SECRET,
      GH_TOKEN: SECRET,
      GH_HOST: 'github.localhost',
      HTTP_PROXY: 'http://127.0.0.1:4567',
    });
    const other = proxyEnvironment(parent, { url: 'http://127.0.0.1:4567', secret: SECRET }, [CI_TOKEN], 'vault');
    expect(Object.keys(other).filter((name) => (WITHHELD_VARIABLES as readonly string[]).includes(name) || name.startsWith('GH_'))).toEqual([]);
    expect(other).toMatchObject({ KEYWAY_PROXY_URL: 'http://127.0.0.1:4567', KEYWAY_PROXY_SECRET: SECRET });
  });

  it('on CircleCI withholds both OIDC tokens the job was given: the v2 one keyway read, and v1, of the same issuer and audience', () => {
    const parent = { PATH: '/usr/bin', CIRCLECI: 'true', CIRCLE_OIDC_TOKEN: 'eyJ.v1-token-of-the-same-job.sig', CIRCLE_OIDC_TOKEN_V2: CI_TOKEN };
    expect(proxyEnvironment(parent, { url: 'http://127.0.0.1:4567', secret: SECRET }, [CI_TOKEN], 'vault')).toEqual({
      PATH: '/usr/bin',
      CIRCLECI: 'true',
      KEYWAY_PROXY_URL: 'http://127.0.0.1:4567',
      KEYWAY_PROXY_SECRET: SECRET,
    });
  });
});
