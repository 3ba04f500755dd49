import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { getRequestListener, RequestError, type Http2Bindings, type HttpBindings, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { AppEnv } from '../../http/app.ts';
import { answerProbe } from '../../http/routes/probes.ts';
import { NO_SNIFF } from '../../http/oauth-errors.ts';
import { closeAfterUnreadBody } from './close-after-unread-body.ts';

/**
 * What one client may hold of the Node server: request headers up to 16 KiB (answered 431
 * beyond), 10 s to send them and 30 s for the whole request (answered 408 and closed), checked
 * every second.
 */
export const INBOUND_LIMITS = { maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 } as const;

/**
 * What @hono/node-server cannot make a Request of (a backslash in the path or an invalid absolute-form target, where the
 * Host header is not plain lower case) never reaches the app: answered as keyway answers a malformed request, with an
 * RFC 6749 error, rather than the adapter's empty 400. No record: nothing of the request can be read. Anything else that
 * escapes the app (it answers its own errors) is a 500 in the same shape.
 */
function answerUnservable(error: unknown): Response {
  if (error instanceof RequestError) return malformed(`the request target or Host header is not a URL: ${error.message}`);
  return Response.json({ error: 'server_error', error_description: 'internal error' }, { status: 500, headers: UNSERVABLE_HEADERS });
}

const UNSERVABLE_HEADERS = { 'Cache-Control': 'no-store', ...NO_SNIFF } as const;

function malformed(description: string): Response {
  return Response.json({ error: 'invalid_request', error_description: description }, { status: 400, headers: UNSERVABLE_HEADERS });
}

/**
 * Node hands a CONNECT request to the server's `connect` listeners, not to the app, and closes its connection unanswered
 * when there is none. The broker opens no tunnels: answered as a request it cannot serve, and closed (the rest of the
 * connection would be the tunnel's). No record: no route sees it. Node reads nothing more of a socket it handed over, so
 * the client's end of it is never seen: the socket is destroyed once the answer is written, or it would be held (and a
 * shutdown wait for it) for ever. Requests the client sent before it on the connection are answered first (RFC 9112
 * §9.3.2): written at once, the refusal would be read as their answer and theirs never sent. Node answers a connection's
 * requests in order, so the last one's answer (`earlier`) is the one to wait for.
 */
async function refuseTunnel(socket: Duplex, earlier: ServerResponse | undefined): Promise<void> {
  socket.on('error', () => socket.destroy());
  if (earlier !== undefined && !earlier.writableFinished) await once(earlier, 'close');
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: 'invalid_request', error_description: 'CONNECT asks for a tunnel, which the broker does not open' });
  const headers = { ...UNSERVABLE_HEADERS, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(`HTTP/1.1 400 Bad Request\r\n${head.join('')}\r\n${body}`, () => socket.destroy());
}

/**
 * RFC 9112 §3.2: a request with more than one Host field line is answered 400. Node keeps the first; a proxy in front
 * may have routed it by another, so the two would not agree on which host the request is for.
 */
function hasTwoHosts({ rawHeaders: raw }: Pick<IncomingMessage, 'rawHeaders'>): boolean {
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return true;
  }
  return false;
}

/**
 * The Node broker's HTTP listener. It listens before the broker is built (so port 0 binds a
 * free port the issuer can name); until `serve`, requests wait for the app, `/livez` answers
 * and `/readyz` says not ready. `close` is the first half of a graceful shutdown.
 */
export class BrokerListener {
  readonly #server: ServerType;
  /**
   * Each connection's peer address, read as it was accepted. A socket asks the kernel when first asked, and a client that
   * resets its connection right after sending a request has its socket destroyed before the request is answered: asked
   * then, it names no peer, and the request would skip the per-client rate limit and leave its record without client_ip.
   */
  readonly #peers = new WeakMap<Socket, string>();
  /** Per connection, the answer to the last request it carried: a CONNECT after it is refused once it is written. */
  readonly #lastResponse = new WeakMap<Duplex, ServerResponse>();
  readonly #app = Promise.withResolvers<Hono<AppEnv>>();
  #ready: () => boolean = () => false;
  #refuse: (request: Request) => Promise<Response | undefined> = async () => undefined;
  #keepAlive = true;
  #closed = false;
  #inFlight = 0;

  private constructor(server: ServerType) {
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress;
      // Reset before it was accepted: nothing it sent can be answered, nor attributed.
      if (address === undefined) socket.destroy();
      else this.#peers.set(socket, address);
    });
    server.on('connect', (_request: IncomingMessage, socket: Duplex) => void refuseTunnel(socket, this.#lastResponse.get(socket)));
    server.on('request', (request, response) => {
      // A response that was under way when the listener closed leaves its connection idle: close it then, not after keep-alive's 5 s.
      response.on('finish', () => this.#closed && setImmediate(() => this.#closeIdle()));
      this.#lastResponse.set(request.socket, response);
    });
  }

  /**
   * `maxConnections` bounds the sockets one process holds: past it, Node closes each new connection as
   * it is accepted, so idle or slow clients cannot take every file descriptor and starve the rest.
   */
  static listen(options: { readonly port: number; readonly host: string; readonly maxConnections: number }): Promise<BrokerListener> {
    let listener: BrokerListener | undefined;
    return new Promise<BrokerListener>((resolve, reject) => {
      const server = createServer(
        INBOUND_LIMITS,
        getRequestListener(
          closeAfterUnreadBody(async (request, env) => (listener as BrokerListener).#answer(request, env)),
          { hostname: options.host, errorHandler: answerUnservable },
        ),
      );
      server.maxConnections = options.maxConnections;
      listener = new BrokerListener(server);
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve(listener as BrokerListener));
    });
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The address of the peer that sent `request`, as its connection was accepted. */
  peerAddress(request: IncomingMessage): string | undefined {
    return this.#peers.get(request.socket);
  }

  /** Requests (probes aside) being answered now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Starts answering with `app`; `/readyz` asks `ready`, and every other request is shown to `refuse` first: its answer, if any, is the one given. */
  serve(app: Hono<AppEnv>, ready: () => boolean, refuse: (request: Request) => Promise<Response | undefined>): void {
    this.#ready = ready;
    this.#refuse = refuse;
    this.#app.resolve(app);
  }

  /**
   * From now on every answer says `Connection: close`, so clients and load balancers stop reusing
   * connections before the listener closes (where a request sent on an idle one would be lost).
   */
  endKeepAlive(): void {
    this.#keepAlive = false;
  }

  /**
   * Stops accepting connections and closes the idle ones; resolves once every request under way
   * has been answered and its connection closed (each answer given now says `Connection: close`).
   */
  close(): Promise<void> {
    this.endKeepAlive();
    this.#closed = true;
    return new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#closeIdle();
    });
  }

  /** Closes every connection at once, answered or not (a start-up that failed). */
  destroy(): Promise<void> {
    const closed = this.close();
    if ('closeAllConnections' in this.#server) this.#server.closeAllConnections();
    return closed;
  }

  async #answer(request: Request, env: HttpBindings | Http2Bindings): Promise<Response> {
    if (hasTwoHosts(env.incoming)) return this.#withoutKeepAlive(malformed('the request has more than one Host header field'));
    const probe = answerProbe(request, () => this.#ready());
    if (probe !== undefined) return this.#withoutKeepAlive(await probe);
    this.#inFlight += 1;
    try {
      const app = await this.#app.promise;
      return this.#withoutKeepAlive((await this.#refuse(request)) ?? (await app.fetch(request, env)));
    } finally {
      this.#inFlight -= 1;
    }
  }

  /** Once a shutdown began, no answer invites the client to send another request on its connection. */
  #withoutKeepAlive(response: Response): Response {
    if (!this.#keepAlive) response.headers.set('Connection', 'close');
    return response;
  }

  #closeIdle(): void {
    if ('closeIdleConnections' in this.#server) this.#server.closeIdleConnections();
  }
}
