import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit as streamedBodyLimit } from 'hono/body-limit';

export interface BodyLimitOptions {
  readonly maxSize: number;
  readonly onError: (c: Context) => Response | Promise<Response>;
  /**
   * A body without a declared length that ended before it was received whole: the client closed its connection, or ran
   * out of time (Node's 408). The client's doing, not a fault, so answered as the route answers a body it cannot read.
   */
  readonly onIncomplete: (c: Context) => Response | Promise<Response>;
}

/**
 * hono's bodyLimit, with its first decision taken first: a request that declares its length
 * (Content-Length, no Transfer-Encoding) is judged by that length, as hono judges it, but
 * without touching the web Request's body stream to find out whether there is a body. On Node
 * that touch makes @hono/node-server build an undici Request and a web stream around the socket
 * for every request; left alone, it reads the body straight from the IncomingMessage. A body
 * without a declared length is counted as it streams, by hono's own middleware.
 */
export function bodyLimit(options: BodyLimitOptions): MiddlewareHandler {
  return async (c, next) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) {
      // Only the stream's own failure is the client's: what the route, or onError past the limit, does once it was read is keyway's.
      let read = false;
      const streamed = streamedBodyLimit({
        maxSize: options.maxSize,
        onError: (c) => {
          read = true;
          return options.onError(c);
        },
      });
      try {
        return await streamed(c, () => {
          read = true;
          return next();
        });
      } catch (error) {
        if (read) throw error;
        return options.onIncomplete(c);
      }
    }
    return Number.parseInt(length, 10) > options.maxSize ? options.onError(c) : next();
  };
}
