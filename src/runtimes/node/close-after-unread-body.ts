import { IncomingMessage } from 'node:http';
import type { Http2Bindings, HttpBindings } from '@hono/node-server';

type Fetch = (request: Request, env: HttpBindings | Http2Bindings) => Response | Promise<Response>;

/**
 * Wraps the Node server's fetch so that an HTTP/1.1 answer given before the request body was read
 * to its end (a 413, a 415, a 429 or 405 before the body, a webhook without a signature) says
 * `Connection: close`, and the server closes the connection after it (RFC 9112 §9.6). The rest of
 * that body is still on the wire and a refused request gets no more reads, so the client must not
 * send its next request on this connection; told keep-alive, it would, and fail.
 */
export function closeAfterUnreadBody(fetch: Fetch): Fetch {
  return async (request, env) => {
    const response = await fetch(request, env);
    const { incoming } = env;
    if (incoming instanceof IncomingMessage && hasBody(incoming) && !incoming.readableEnded) response.headers.set('Connection', 'close');
    return response;
  };
}

function hasBody(incoming: IncomingMessage): boolean {
  const length = incoming.headers['content-length'];
  return incoming.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
