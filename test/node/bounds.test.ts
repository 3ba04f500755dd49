import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { INBOUND_LIMITS } from '../../src/runtimes/node/broker-listener.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, GRANT_TYPE, suitePolicies, type BrokerHarness } from '../suites/exchange-suite.ts';
import { silentLogger, type LogFields } from '../../src/core/log.ts';
import { startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { BROKER_ISSUER, startNodeHarness, testConfig, writeTree } from './node-harness.ts';

/** Raw HTTP/1.1 over a socket: what a hostile client sends, not what fetch would. Resolves with the first response's head, or 'closed'. */
function raw(url: string, send: (socket: ReturnType<typeof connect>) => void): Promise<{ head: string; elapsedMs: number }> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => send(socket));
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve({ head: received.split('\r\n')[0] ?? 'closed', elapsedMs: Date.now() - started }));
  });
}

interface RawResponse {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly text: string;
  /** The answer's JSON; empty for one in another format (the /audit page's HTML). */
  readonly body: Record<string, unknown>;
}

/** Whether the broker at `url` answers a new connection's request within `ms` (one it holds to its cap refuses). */
async function servedWithin(url: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await fetch(`${url}/livez`, { headers: { connection: 'close' } }).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return true;
  }
  return false;
}

/** The broker's answer to a request it cannot serve: an RFC 6749 400 saying why, never stored or sniffed. */
function expectUnservable(refused: RawResponse, description: unknown): void {
  expect(refused.status).toBe(400);
  expect(refused.headers.get('cache-control')).toBe('no-store');
  expect(refused.headers.get('x-content-type-options')).toBe('nosniff');
  expect(JSON.parse(refused.text)).toEqual({ error: 'invalid_request', error_description: description });
}

/**
 * A keep-alive HTTP/1.1 client as RFC 9112 describes one: it sends each request whole, reads the
 * answer (framed by Content-Length), and sends the next request on the same connection unless the
 * answer said `Connection: close`, when it opens a new one. A server that promises keep-alive and
 * then drops the connection fails the next request.
 */
class KeepAliveClient {
  readonly #port: number;
  #socket: Socket | undefined;
  #received = Buffer.alloc(0);
  #closed = false;
  #waiting: (() => void) | undefined;

  constructor(url: string) {
    this.#port = Number(new URL(url).port);
  }

  /**
   * `slow`: an upload slower than the server reads: the head and 16 KiB now, the rest a second
   * later, unless the server has answered `Connection: close` by then (RFC 9112 §9.5: it then
   * stops sending).
   */
  async send(head: string, body: string | Buffer = '', options: { slow?: boolean } = {}): Promise<RawResponse> {
    const socket = await this.#connection();
    const answer = this.#read();
    if (options.slow === true) {
      socket.write(head);
      socket.write(Buffer.from(body).subarray(0, 16 * 1024));
      let closing = false;
      answer.then((response) => (closing = response.headers.get('connection') === 'close')).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (!closing) socket.write(Buffer.from(body).subarray(16 * 1024));
    } else {
      socket.write(head);
      socket.write(body);
    }
    const response = await answer;
    if (response.headers.get('connection') === 'close') this.close();
    return response;
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  async #connection(): Promise<Socket> {
    if (this.#socket !== undefined) return this.#socket;
    const socket = connect(this.#port, '127.0.0.1');
    await once(socket, 'connect');
    this.#received = Buffer.alloc(0);
    this.#closed = false;
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#waiting?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      this.#waiting?.();
    });
    this.#socket = socket;
    return socket;
  }

  async #read(): Promise<RawResponse> {
    for (;;) {
      const end = this.#received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const [statusLine = '', ...lines] = this.#received.subarray(0, end).toString('latin1').split('\r\n');
        const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        const length = Number(headers.get('content-length'));
        if (this.#received.length >= end + 4 + length) {
          const text = this.#received.subarray(end + 4, end + 4 + length).toString('utf8');
          this.#received = this.#received.subarray(end + 4 + length);
          const json = headers.get('content-type')?.startsWith('application/json') === true;
          return { status: Number(statusLine.split(' ')[1]), headers, text, body: json ? (JSON.parse(text) as Record<string, unknown>) : {} };
        }
      }
      if (this.#closed) throw new Error('the server closed the connection before it answered');
      await new Promise<void>((resolve) => (this.#waiting = resolve));
    }
  }
}

/** A POST /token as a client writes it: a declared length, any content type. */
function tokenRequest(body: string | Buffer, contentType = 'application/x-www-form-urlencoded', method = 'POST'): [string, string | Buffer] {
  return [`${method} /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`, body];
}

/**
 * Every answer /token gives before it read the body, then a good exchange from the same client:
 * the refusal must not cost the next request its connection.
 */
function refusedThenGranted(broker: () => BrokerHarness, github: () => TestIssuer, url: () => string, betweenRequests: () => void = () => {}) {
  return async (refused: [string, string | Buffer], expected: { status: number; error: string; reason: string }, options: { slow?: boolean } = {}) => {
    const client = new KeepAliveClient(url());
    try {
      const answer = await client.send(...refused, options);
      expect(answer.status).toBe(expected.status);
      expect(answer.body['error']).toBe(expected.error);
      expect(answer.body).not.toHaveProperty('access_token');
      expect((await broker().auditEvent(answer.body['audit_event_id'] as string))?.reason).toBe(expected.reason);
      betweenRequests();
      const next = await client.send(...tokenRequest(exchangeForm(await github().sign(ciClaims(github().url, broker().issuer))).toString()));
      expect(next.status).toBe(200);
      expect(next.body['access_token']).toBeTypeOf('string');
    } finally {
      client.close();
    }
  };
}

describe('inbound bounds on Node', () => {
  let broker: BrokerHarness;
  let github: TestIssuer;
  let generic: TestIssuer;
  let url: string;
  /** What the broker logged as an error: a fault of its own, never a client's doing. */
  const errors: { message: string; fields?: LogFields }[] = [];
  beforeAll(async () => {
    github = freshIssuer(inject('testIssuerBase'), 'bounds-gh');
    generic = freshIssuer(inject('testIssuerBase'), 'bounds-oidc');
    const introspector = `version: 1\nissuer: "${generic.url}"\nmatch: { sub: svc-rs }\ngrant: { audience: "${BROKER_ISSUER}", scopes: [tokens:introspect] }\n`;
    broker = await startNodeHarness(
      { ...suitePolicies(github, generic), 'ops/introspector.yaml': introspector },
      {
        log: { ...silentLogger, error: (message, fields) => void errors.push({ message, ...(fields === undefined ? {} : { fields }) }) },
      },
    );
    url = (await broker.request('/healthz')).url.replace('/healthz', '');
  });
  afterAll(() => broker.close());

  describe('a request refused before its body is read leaves the client a working connection', () => {
    const check = refusedThenGranted(
      () => broker,
      () => github,
      () => url,
    );
    const megabyte = Buffer.alloc(1024 * 1024, 'x');

    const tooLarge = { status: 413, error: 'invalid_request', reason: 'request_too_large' };

    it('413 for a declared body over 64 KiB, sent whole', () => check(tokenRequest(megabyte), tooLarge));

    it('413 for a declared body over 64 KiB, sent slowly', () => check(tokenRequest(megabyte), tooLarge, { slow: true }));

    it('415 for a body that is not a form', () =>
      check(
        tokenRequest(megabyte.subarray(0, 60 * 1024), 'application/json'),
        { status: 415, error: 'invalid_request', reason: 'unsupported_media_type' },
        {
          slow: true,
        },
      ));

    it('405 for a method other than POST', () =>
      check(
        tokenRequest(megabyte, 'application/x-www-form-urlencoded', 'PUT'),
        { status: 405, error: 'invalid_request', reason: 'method_not_allowed' },
        {
          slow: true,
        },
      ));
  });

  it('answers a sign-in form over 32 KiB on the /audit page with 413 before the rest is sent, and serves the next request', async () => {
    const client = new KeepAliveClient(url);
    try {
      const form = Buffer.concat([Buffer.from('token='), Buffer.alloc(1024 * 1024, 'a')]);
      const head = `POST /audit/sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\n\r\n`;
      const refused = await client.send(head, form, { slow: true });
      expect(refused.status).toBe(413);
      expect(refused.headers.get('connection')).toBe('close');
      expect(refused.text).toContain('larger than 32768 bytes');
      expect((await client.send('GET /audit/sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).status).toBe(200);
    } finally {
      client.close();
    }
  });

  it.each([
    ['a backslash in the path, beside a Host that is not lower case', 'GET /proxy/vendor/a\\b HTTP/1.1\r\nHost: Keyway.Test\r\n\r\n'],
    ['an absolute-form target that is no URL', 'GET http://[::1/proxy/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ])('answers a request the HTTP server cannot make a URL of (%s) with an RFC 6749 error, not an empty 400', async (_what, head) => {
    const client = new KeepAliveClient(url);
    try {
      expectUnservable(await client.send(head), expect.stringMatching(/^the request target or Host header is not a URL/));
    } finally {
      client.close();
    }
  });

  it.each([
    ['authority-form, as a client asks a proxy for a tunnel', 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n'],
    ["a route's path", 'CONNECT /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ])('answers CONNECT (%s) with an RFC 6749 error, not a connection closed unanswered, and serves on', async (_target, head) => {
    const client = new KeepAliveClient(url);
    try {
      const refused = await client.send(head);
      expectUnservable(refused, 'CONNECT asks for a tunnel, which the broker does not open');
      expect(refused.headers.get('connection')).toBe('close');
      const next = await client.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect([next.status, next.body]).toEqual([200, { status: 'ok' }]);
    } finally {
      client.close();
    }
  });

  it("lets go of a refused CONNECT's connection once it is answered, though the client sent its tunnel's bytes unread", async () => {
    const capped = await startNodeBroker(testConfig(writeTree({ 'policies/README': 'none' }), { maxConnections: 1 }), { log: silentLogger });
    const { hostname, port } = new URL(capped.url);
    try {
      const tunnel = connect(Number(port), hostname);
      tunnel.on('error', () => undefined);
      await once(tunnel, 'connect');
      // More than the socket buffers hold, which the server, reading nothing after a CONNECT's head, never takes.
      tunnel.write(`CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n${'x'.repeat(1024 * 1024)}`);
      const [answer] = (await once(tunnel, 'data')) as [Buffer];
      expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
      tunnel.destroy();
      // The only connection the broker holds is free again: a connection it kept would have the next one closed unanswered.
      expect(await servedWithin(capped.url, 5_000)).toBe(true);
    } finally {
      await capped.close();
    }
  });

  it('answers a request sent before a CONNECT on its connection first, then refuses the CONNECT (RFC 9112 §9.3.2: answers in order)', async () => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nCONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n');
    await once(socket, 'close');
    const answers = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((answer) => answer[1]);
    expect(answers).toEqual(['200', '400']);
    expect(received).toContain('{"status":"ok"}');
    expect(received).toMatch(/CONNECT asks for a tunnel, which the broker does not open"\}$/);
  });

  it('answers a request with two Host field lines 400 (RFC 9112 §3.2), whichever the route, and one Host in any case as usual', async () => {
    const client = new KeepAliveClient(url);
    try {
      for (const head of [
        'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nhost: keyway.evil.example\r\n\r\n',
        'GET /livez HTTP/1.1\r\nHOST: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n',
        'POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\nHost: x\r\n\r\ngrant_type=nope',
      ]) {
        const refused = await client.send(head);
        expect(refused.status, head).toBe(400);
        expect(refused.headers.get('cache-control')).toBe('no-store');
        expect(JSON.parse(refused.text)).toEqual({ error: 'invalid_request', error_description: 'the request has more than one Host header field' });
      }
      const one = await client.send('GET /healthz HTTP/1.1\r\nHOST: 127.0.0.1\r\n\r\n');
      expect([one.status, JSON.parse(one.text)]).toEqual([200, { status: 'ok' }]);
    } finally {
      client.close();
    }
  });

  describe('a client that leaves before its body ends is refused as it would be for a malformed body, not as a fault', () => {
    /** `head` and the first bytes of a body it promises more of, then the connection closed: resolves once the broker saw it close. */
    const leaveMidBody = (head: string) =>
      raw(url, (socket) => {
        socket.write(`${head}\r\n`);
        setTimeout(() => socket.end(), 100);
      });
    const declared = (path: string, extra = '') =>
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n${extra}Content-Length: 1000\r\n\r\ntoken=a`;
    const chunked = (path: string, extra = '') =>
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n${extra}Transfer-Encoding: chunked\r\n\r\n7\r\ntoken=a`;

    it.each([
      ['declared', declared],
      ['chunked', chunked],
    ])('POST /token, its length %s: a malformed_request record, nothing logged as an error', async (_how, request) => {
      errors.length = 0;
      const last = (await broker.recentAuditEvents())[0]?.id;
      await leaveMidBody(request('/token'));
      await vi.waitFor(async () => expect((await broker.recentAuditEvents())[0]?.id).not.toBe(last), { timeout: 5000 });
      const [newest] = await broker.recentAuditEvents();
      expect(newest).toMatchObject({ reason: 'malformed_request', decision: 'malformed', request: { client_ip: '127.0.0.1' } });
      expect(newest?.detail).toMatch(/^the request body ended before it was received whole/);
      expect(errors).toEqual([]);
    });

    it.each([
      ['declared', declared],
      ['chunked', chunked],
    ])(
      "POST /revoke from a stranger and /introspect from an operator, its length %s: a malformed_request record each, the operator's naming it",
      async (_how, request) => {
        errors.length = 0;
        const now = Math.floor(Date.now() / 1000);
        const subject = await generic.sign({ iss: generic.url, aud: broker.issuer, sub: 'svc-rs', iat: now, exp: now + 300, jti: crypto.randomUUID() });
        const granted = await broker.request('/token', {
          method: 'POST',
          body: exchangeForm(subject),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        const operator = ((await granted.json()) as Record<string, unknown>)['access_token'] as string;
        const recorded: unknown[] = [];
        for (const [path, extra] of [
          ['/revoke', ''],
          ['/introspect', `Authorization: Bearer ${operator}\r\n`],
        ] as const) {
          const last = (await broker.recentAuditEvents())[0]?.id;
          await leaveMidBody(request(path, extra));
          await vi.waitFor(async () => expect((await broker.recentAuditEvents())[0]?.id).not.toBe(last), { timeout: 5000 });
          recorded.push((await broker.recentAuditEvents())[0]);
        }
        const ended = 'the request body ended before it was received whole: the client closed the connection or ran out of time';
        expect(recorded).toEqual([
          expect.objectContaining({
            reason: 'malformed_request',
            decision: 'malformed',
            detail: `POST /revoke: ${ended}`,
            request: expect.objectContaining({ client_ip: '127.0.0.1' }),
          }),
          expect.objectContaining({
            reason: 'malformed_request',
            detail: `POST /introspect: ${ended}`,
            issuer: broker.issuer,
            subject: expect.stringContaining('svc-rs'),
          }),
        ]);
        expect(recorded[0]).not.toHaveProperty('subject');
        expect(recorded.map((event) => Object.hasOwn(event as object, 'subject_token'))).toEqual([false, false]);
        expect(errors).toEqual([]);
      },
    );

    it.each([['the /audit sign-in form', '/audit/sign-in', 'Sec-Fetch-Site: same-origin\r\n']])(
      '%s, its length declared or chunked: nothing logged as an error',
      async (_who, path, extra) => {
        errors.length = 0;
        await leaveMidBody(declared(path, extra));
        await leaveMidBody(chunked(path, extra));
        // Each answer (to nobody) was given by the time a later request on another connection is.
        await broker.request('/livez');
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(errors).toEqual([]);
      },
    );
  });

  it('answers 431 to request headers over 16 KiB', async () => {
    const response = await broker.request('/token', {
      method: 'POST',
      body: exchangeForm('a.b.c'),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-padding': 'x'.repeat(INBOUND_LIMITS.maxHeaderSize) },
    });
    expect(response.status).toBe(431);
  });

  it('answers 413 to a chunked body over 64 KiB that declares no length, and records it', async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`grant_type=${encodeURIComponent(GRANT_TYPE)}&pad=`));
        for (let index = 0; index < 20; index += 1) controller.enqueue(new TextEncoder().encode('x'.repeat(8192)));
        controller.close();
      },
    });
    const response = await broker.request('/token', {
      method: 'POST',
      body: chunks,
      duplex: 'half',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    } as RequestInit);
    expect(response.status).toBe(413);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'invalid_request' });
    expect((await broker.auditEvent(body['audit_event_id'] as string))?.reason).toBe('request_too_large');
  });

  it('takes a well-formed X-Request-Id up to 128 characters and replaces a longer or odd one', async () => {
    const post = (id: string) =>
      broker.request('/token', {
        method: 'POST',
        body: exchangeForm('a.b.c'),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': id },
      });
    expect((await post('job-42')).headers.get('x-request-id')).toBe('job-42');
    for (const id of ['r'.repeat(129), 'line\tbreak', '<script>']) {
      const response = await post(id);
      expect(response.headers.get('x-request-id')).not.toBe(id);
      const recorded = await broker.auditEvent(((await response.json()) as Record<string, string>)['audit_event_id'] as string);
      expect(recorded?.request.id).toBe(response.headers.get('x-request-id'));
    }
  });

  it('429 before the body is read leaves the client a working connection', async () => {
    const limitedGitHub = freshIssuer(inject('testIssuerBase'), 'bounds-limited-gh');
    const clock = { now: Date.now() };
    const limited = await startNodeHarness(suitePolicies(limitedGitHub, freshIssuer(inject('testIssuerBase'), 'bounds-limited-oidc')), {
      settings: { KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '1' },
      now: () => clock.now,
    });
    try {
      const limitedUrl = (await limited.request('/healthz')).url.replace('/healthz', '');
      const check = refusedThenGranted(
        () => limited,
        () => limitedGitHub,
        () => limitedUrl,
        () => (clock.now += 60_000),
      );
      expect((await limited.request('/token', { method: 'POST', body: exchangeForm('a.b.c') })).status).toBe(400);
      await check(
        tokenRequest(exchangeForm(await limitedGitHub.sign(ciClaims(limitedGitHub.url, limited.issuer)), { pad: 'x'.repeat(60 * 1024) }).toString()),
        {
          status: 429,
          error: 'temporarily_unavailable',
          reason: 'rate_limited',
        },
        { slow: true },
      );
    } finally {
      await limited.close();
    }
  });

  it(
    'cuts off a client that never finishes its headers with 408',
    async () => {
      const { head, elapsedMs } = await raw(url, (socket) =>
        socket.write('POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n'),
      );
      expect(head).toBe('HTTP/1.1 408 Request Timeout');
      expect(elapsedMs).toBeGreaterThanOrEqual(INBOUND_LIMITS.headersTimeout - 100);
      expect(elapsedMs).toBeLessThan(INBOUND_LIMITS.headersTimeout + 2 * INBOUND_LIMITS.connectionsCheckingInterval + 1000);
    },
    INBOUND_LIMITS.headersTimeout + 10_000,
  );

  it('closes a connection past KEYWAY_MAX_CONNECTIONS as it is accepted, and serves again once one ends', async () => {
    const capped = await startNodeBroker(testConfig(writeTree({ 'policies/README': 'none' }), { maxConnections: 2 }), { log: silentLogger });
    const { hostname, port } = new URL(capped.url);
    /** A client that asked once and keeps its connection open (keep-alive), so the server counts it until it ends. */
    const holdConnection = async (): Promise<Socket> => {
      const socket = connect(Number(port), hostname);
      await once(socket, 'connect');
      socket.write('GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const [answer] = (await once(socket, 'data')) as [Buffer];
      expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
      return socket;
    };
    try {
      const held = [await holdConnection(), await holdConnection()];
      // Past the cap the server closes the new connection without a byte; under it, a silent client would get 408 only after 10 s.
      const third = connect(Number(port), hostname);
      let received = '';
      third.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      third.on('error', () => undefined);
      await once(third, 'close');
      expect(received).toBe('');

      held[0]?.destroy();
      expect(await servedWithin(capped.url, 5_000)).toBe(true);
      held[1]?.destroy();
    } finally {
      await capped.close();
    }
  });
});
