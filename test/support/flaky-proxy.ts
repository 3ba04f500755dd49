import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the proxy does to one POST /token: drop the connection, answer a status itself, or pass it on; `lost` passes it on
 * and answers 503 in place of the broker's answer, as when the broker's answer does not come back; `cut` passes it on and
 * then drops the connection, the broker's answer unsent, as a reset or a timeout after the request went out does.
 */
export type Fault = 'drop' | 'lost' | 'cut' | 503 | 502;

export interface FlakyProxy {
  readonly url: string;
  /** Where requests go; set once the broker behind it listens. */
  target: string;
  /** Faults for the next POST /token requests, in order; then requests pass. */
  readonly faults: Fault[];
  /** POST /token requests seen, faulted or not. */
  tokenRequests: number;
  /** Paths whose POSTs the proxy answers with a 307 to the URL given, as a misconfigured load balancer could. */
  readonly redirects: Map<string, string>;
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A loopback reverse proxy in front of the real broker that fails on demand, like a load balancer during a deploy. */
export async function startFlakyProxy(): Promise<FlakyProxy> {
  const server = createServer(async (request, response) => {
    const body = await readBody(request);
    const redirect = request.method === 'POST' ? proxy.redirects.get(request.url ?? '') : undefined;
    if (redirect !== undefined) {
      response.writeHead(307, { location: redirect });
      return response.end();
    }
    const forward = () => {
      const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => name !== 'host' && name !== 'connection')) as Record<
        string,
        string
      >;
      return fetch(`${proxy.target}${request.url}`, { method: request.method ?? 'GET', headers, ...(body.length > 0 ? { body } : {}) });
    };
    if (request.method === 'POST' && request.url === '/token') {
      proxy.tokenRequests += 1;
      const fault = proxy.faults.shift();
      if (fault === 'drop') return request.socket.destroy();
      if (fault === 'cut') {
        await (await forward()).arrayBuffer();
        return request.socket.destroy();
      }
      if (fault === 'lost') {
        await (await forward()).arrayBuffer();
        response.writeHead(503, { 'content-type': 'application/json' });
        return response.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'proxy fault: the answer was lost' }));
      }
      if (fault !== undefined) {
        response.writeHead(fault, { 'content-type': 'application/json' });
        return response.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: `proxy fault ${fault}` }));
      }
    }
    const upstream = await forward();
    response.writeHead(
      upstream.status,
      Object.fromEntries([...upstream.headers].filter(([name]) => name !== 'content-length' && name !== 'transfer-encoding')),
    );
    response.end(Buffer.from(await upstream.arrayBuffer()));
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const proxy: FlakyProxy = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    target: '',
    faults: [],
    tokenRequests: 0,
    redirects: new Map(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return proxy;
}
