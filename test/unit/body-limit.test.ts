import { Hono, type Context } from 'hono';
import { describe, expect, it } from 'vitest';
import { bodyLimit } from '../../src/http/middleware/body-limit.ts';

/** A body sent without a declared length, as a chunked upload arrives; `cut`: it errors after its bytes, as one whose client left. */
const streamed = (bytes: number, cut = false): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(controller) {
      controller.enqueue(new Uint8Array(bytes));
      if (cut) controller.error(new Error('aborted'));
      else controller.close();
    },
  });

/** A route behind an 8-byte limit that answers with the length it read; a fault anywhere is app.onError's 500, as in createApp. */
function route(onError: (c: Context) => Response | Promise<Response>): Hono {
  const app = new Hono();
  app.post('/', bodyLimit({ maxSize: 8, onError, onIncomplete: (c) => c.text('ended early', 400) }), async (c) =>
    c.text(String((await c.req.arrayBuffer()).byteLength)),
  );
  app.onError((error, c) => c.text(`fault: ${error.message}`, 500));
  return app;
}

const post = async (app: Hono, body: ReadableStream<Uint8Array>) => {
  const response = await app.request('/', { method: 'POST', body, duplex: 'half' } as RequestInit);
  return { status: response.status, text: await response.text() };
};

describe('bodyLimit, a body without a declared length', () => {
  const refuse = (c: Context) => c.text('too large', 413);

  it('passes a whole body within the limit to the route, and refuses one past it with onError', async () => {
    expect(await post(route(refuse), streamed(8))).toEqual({ status: 200, text: '8' });
    expect(await post(route(refuse), streamed(9))).toEqual({ status: 413, text: 'too large' });
  });

  it('answers a body that broke off with onIncomplete: the client left', async () => {
    expect(await post(route(refuse), streamed(4, true))).toEqual({ status: 400, text: 'ended early' });
  });

  it("leaves a fault in onError's answer to a body past the limit a fault, never a body that ended early", async () => {
    const failing = () => {
      throw new Error('the audit log is unavailable');
    };
    expect(await post(route(failing), streamed(9))).toEqual({ status: 500, text: 'fault: the audit log is unavailable' });
  });
});
