import type { Context, MiddlewareHandler } from 'hono';
import { clientNetwork } from '../../core/limits/network-of.ts';

export interface BodyBudgetOptions {
  /** The bytes of bodies the route may hold at once, every client's together. */
  readonly totalBytes: number;
  /** The bytes of bodies the route may hold at once for one client network (an IPv4 address, an IPv6 /64). */
  readonly perClientBytes: number;
  /** The most the route reads of one body: a declared length past it (refused unread by bodyLimit) is judged as this. */
  readonly maxBodyBytes: number;
  readonly clientIp: (c: Context) => string | undefined;
  /** The answer for a body that would not fit: given before it is read, or in place of the route's once it outgrew the room. */
  readonly onExhausted: (c: Context) => Response | Promise<Response>;
}

/**
 * Bounds the memory a route that reads whole bodies before it can check anything (a webhook's signature covers the body)
 * holds at once. Each body is counted as it arrives, and answered onExhausted once it outgrows the room, in all or in its
 * client's share; one that declares its length is refused unread when that would not fit in what is held now. What a
 * request holds is given back when it is answered. Without it, a client that opens connections and sends large bodies it
 * never finishes makes the process hold them all. A length declared is not held before its bytes come: were it, a few
 * connections that send headers alone would fill the room, for as long as they may take to send the rest, at no cost.
 */
export function bodyBudget(options: BodyBudgetOptions): MiddlewareHandler {
  let held = 0;
  const heldBy = new Map<string, number>();
  const fits = (client: string, bytes: number) => held + bytes <= options.totalBytes && (heldBy.get(client) ?? 0) + bytes <= options.perClientBytes;
  const hold = (client: string, bytes: number) => {
    held += bytes;
    heldBy.set(client, (heldBy.get(client) ?? 0) + bytes);
  };
  const release = (client: string, bytes: number) => {
    held -= bytes;
    const left = (heldBy.get(client) ?? bytes) - bytes;
    if (left > 0) heldBy.set(client, left);
    else heldBy.delete(client);
  };
  return async (c, next) => {
    const ip = options.clientIp(c);
    const client = ip === undefined ? '' : clientNetwork(ip);
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      const declared = Number(length);
      const bytes = Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, options.maxBodyBytes) : options.maxBodyBytes;
      if (!fits(client, bytes)) return options.onExhausted(c);
    }
    if (c.req.raw.body === null) return next();
    let holding = 0;
    let outgrown = false;
    const counted = c.req.raw.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (!fits(client, chunk.byteLength)) {
            outgrown = true;
            controller.error(new Error('the bodies held have no room for this one'));
            return;
          }
          hold(client, chunk.byteLength);
          holding += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
    c.req.raw = new Request(c.req.raw, { body: counted, duplex: 'half' } as RequestInit);
    try {
      await next();
    } finally {
      release(client, holding);
    }
    // The route answered a body that broke off as it answers one the client left; it broke off here.
    if (outgrown) c.res = await options.onExhausted(c);
  };
}
