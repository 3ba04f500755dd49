import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';

/**
 * How a test server on 127.0.0.1 fails the client, for tests of the deadlines and bounds keyway
 * puts on every call it makes. Set through a server's admin API, so workerd tests can too.
 *
 * - `stall`: takes the request and never answers (until the client gives up).
 * - `cut`: takes the request and closes the connection without an answer.
 * - `redirect`: answers 302 to `location`.
 * - `truncated`: answers `status` (200) with a Content-Length and half the body, then closes the connection.
 * - `padded`: the real answer, with whitespace added to make it exactly `bytes` long, sent in
 *   chunks, with a Content-Length only when `declared`, as `status` (200).
 * - `replaced`: `body` as JSON instead of the real answer (a document a broken server sends).
 */
export type Misbehaviour =
  | { readonly kind: 'stall' }
  | { readonly kind: 'cut' }
  | { readonly kind: 'redirect' }
  | { readonly kind: 'truncated'; readonly status?: number }
  | { readonly kind: 'padded'; readonly bytes: number; readonly declared: boolean; readonly status?: number }
  | { readonly kind: 'replaced'; readonly body: unknown };

export type NodeContext = Context<{ Bindings: HttpBindings }>;

/** Answers `c` as `how` says; `answer` is what a well-behaved server would send (a JSON body), `location` where a redirect points. */
export async function misbehave<E extends { Bindings: HttpBindings }>(c: Context<E>, how: Misbehaviour, answer: unknown, location: string): Promise<Response> {
  switch (how.kind) {
    case 'stall':
      await new Promise((resolve) => c.req.raw.signal.addEventListener('abort', resolve, { once: true }));
      return c.body(null, 504);
    case 'cut':
      c.env.incoming.socket.destroy();
      return c.body(null, 502);
    case 'redirect':
      return c.redirect(location, 302);
    case 'truncated':
      return truncated(c.env.outgoing, answer, how.status);
    case 'padded':
      return padded(answer, how.bytes, how.declared, how.status);
    case 'replaced':
      return c.json(how.body);
  }
}

const CHUNK = 16 * 1024;

function padded(answer: unknown, bytes: number, declared: boolean, status = 200): Response {
  const text = JSON.stringify(answer);
  if (text.length > bytes) throw new Error(`the answer alone is ${text.length} bytes, more than ${bytes}`);
  // JSON allows whitespace after the value: the document parses the same, only longer.
  const body = new TextEncoder().encode(text + ' '.repeat(bytes - text.length));
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(body.subarray(offset, offset + CHUNK));
      offset += CHUNK;
      if (offset >= body.length) controller.close();
    },
  });
  return new Response(stream, { status, headers: { 'content-type': 'application/json', ...(declared ? { 'content-length': String(body.length) } : {}) } });
}

/**
 * The answer's first half under a Content-Length of the whole, then the connection dropped: the
 * status line, the headers and that half are written to the socket first, so the client always
 * gets the answer's start (a web stream that errors may be read before the headers leave, and the
 * server then answers 500 instead).
 */
function truncated(outgoing: HttpBindings['outgoing'], answer: unknown, status = 200): Response {
  const body = new TextEncoder().encode(JSON.stringify(answer));
  outgoing.writeHead(status, { 'content-type': 'application/json', 'content-length': String(body.length) });
  outgoing.write(body.subarray(0, body.length >> 1), () => outgoing.socket?.destroy());
  return RESPONSE_ALREADY_SENT;
}
