import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';

/** How long an idle connection is kept: longer than any client here keeps one in its pool. */
const IDLE_CONNECTION_MS = 10 * 60_000;

/**
 * `fetch` served on 127.0.0.1 at a port of its own, with its base URL. Node's server drops an
 * idle keep-alive connection after 5 s; a client that reuses it at that moment (workerd does, from
 * its pool, on a loaded machine) loses its request with "Network connection lost". The server
 * keeps idle connections instead, and closing it closes them.
 */
export async function serveOnLoopback(fetch: Parameters<typeof serve>[0]['fetch']): Promise<{ server: ServerType; base: string; close: () => Promise<void> }> {
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started));
  });
  if ('keepAliveTimeout' in server) server.keepAliveTimeout = IDLE_CONNECTION_MS;
  return {
    server,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}
