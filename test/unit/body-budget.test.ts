import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { bodyBudget } from '../../src/http/middleware/body-budget.ts';

/** A body sent without a declared length, as a chunked upload arrives, in chunks of one byte. */
const streamed = (bytes: number): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes; i += 1) controller.enqueue(new Uint8Array(1));
      controller.close();
    },
  });

/** A body that sends nothing until `end` closes it, as a client that declared a length and sent only its headers. */
const silent = () => {
  let end = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      end = () => controller.close();
    },
  });
  return { stream, end: () => end() };
};

/**
 * A route behind a budget of 10 bytes, 6 per client (the client named by X-Client), that reads at most 5 of a body. It
 * reads each body it takes (answering 400 when the read fails, as a route answers a body the client left), then holds it
 * until `releaseAll`, as a slow route holds what it read until it answers.
 */
function heldRoute() {
  const releases: (() => void)[] = [];
  const app = new Hono();
  app.post(
    '/',
    bodyBudget({
      totalBytes: 10,
      perClientBytes: 6,
      maxBodyBytes: 5,
      clientIp: (c) => c.req.header('x-client'),
      onExhausted: (c) => c.text('full', 503),
    }),
    async (c) => {
      let read: number;
      try {
        read = (await c.req.arrayBuffer()).byteLength;
      } catch {
        return c.text('the body broke off', 400);
      }
      await new Promise<void>((resolve) => releases.push(resolve));
      return c.text(String(read));
    },
  );
  /** A number is a body of that many bytes, its length declared; a stream's length is declared only when `declared` says one. */
  const send = (client: string, body: number | ReadableStream<Uint8Array>, declared?: number) =>
    app.request('/', {
      method: 'POST',
      headers: { 'x-client': client, ...(typeof body === 'number' || declared !== undefined ? { 'content-length': String(declared ?? body) } : {}) },
      body: typeof body === 'number' ? new Uint8Array(body) : body,
      duplex: 'half',
    } as RequestInit);
  /** Lets the route run far enough to hold (or be refused); the answer comes once it is released (or at once). */
  const start = async (client: string, body: number | ReadableStream<Uint8Array>, declared?: number): Promise<{ readonly answer: Promise<Response> }> => {
    const answer = Promise.resolve(send(client, body, declared));
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { answer };
  };
  const refused = async (client: string, body: number | ReadableStream<Uint8Array>) => {
    const answer = await (await start(client, body)).answer;
    return [answer.status, await answer.text()];
  };
  const releaseAll = () => {
    for (const release of releases.splice(0)) release();
  };
  return { start, refused, releaseAll, held: () => releases.length };
}

const FULL = [503, 'full'];

describe('bodyBudget', () => {
  it("refuses a body past one client's share, while other clients still fit", async () => {
    const route = heldRoute();
    const first = await route.start('198.51.100.1', 5);
    expect(await route.refused('198.51.100.1', 2)).toEqual(FULL);
    const other = await route.start('198.51.100.2', 5);
    expect(route.held()).toBe(2);
    route.releaseAll();
    expect([await (await first.answer).text(), await (await other.answer).text()]).toEqual(['5', '5']);
  });

  it('refuses a body past the total, whoever sends it, and fits it again once the bodies held were answered', async () => {
    const route = heldRoute();
    const held = [await route.start('198.51.100.1', 5), await route.start('198.51.100.2', 5)];
    expect(await route.refused('198.51.100.3', 1)).toEqual(FULL);
    route.releaseAll();
    expect((await Promise.all(held.map(({ answer }) => answer))).map((answer) => answer.status)).toEqual([200, 200]);
    const again = await route.start('198.51.100.3', 5);
    expect(route.held()).toBe(1);
    route.releaseAll();
    expect((await again.answer).status).toBe(200);
  });

  it('holds what a body sent, not the length it declared: a declared length is refused unread only when it would not fit now, and one past the most read is judged as the most read', async () => {
    const route = heldRoute();
    // 5 declared, nothing sent: nothing held, so the same client's whole 5 still fits its share of 6.
    const promised = silent();
    const waiting = await route.start('198.51.100.1', promised.stream, 5);
    const whole = await route.start('198.51.100.1', 5);
    expect(route.held()).toBe(1);
    // 5 held: 2 more would not fit the share, so they are refused before a byte is read.
    expect(await route.refused('198.51.100.1', 2)).toEqual(FULL);
    // 1000 declared, judged as the 5 the route reads at most: with 5 held of the 10, it fits.
    const large = silent();
    const other = await route.start('198.51.100.2', large.stream, 1000);
    promised.end();
    large.end();
    await new Promise((resolve) => setTimeout(resolve, 5));
    route.releaseAll();
    expect(await Promise.all([waiting, whole, other].map(async ({ answer }) => (await answer).text()))).toEqual(['0', '5', '0']);
  });

  it('counts a body of no declared length as it arrives: it holds what it sent, and is answered onExhausted once it outgrows the room', async () => {
    const route = heldRoute();
    const first = await route.start('198.51.100.1', streamed(4));
    // 4 held of this client's 6: 2 more fit, 3 do not.
    expect(await route.refused('198.51.100.1', streamed(3))).toEqual(FULL);
    const second = await route.start('198.51.100.1', streamed(2));
    expect(route.held()).toBe(2);
    route.releaseAll();
    expect([await (await first.answer).text(), await (await second.answer).text()]).toEqual(['4', '2']);
  });

  it('counts an IPv6 client by its /64, and gives a share back when the route fails', async () => {
    const route = heldRoute();
    const first = await route.start('2001:db8:1:2::1', 5);
    expect(await route.refused('2001:db8:1:2::ffff', 2)).toEqual(FULL);
    route.releaseAll();
    await first.answer;
    const failing = new Hono();
    let calls = 0;
    failing.post(
      '/',
      bodyBudget({ totalBytes: 10, perClientBytes: 6, maxBodyBytes: 5, clientIp: () => '198.51.100.1', onExhausted: (c) => c.text('full', 503) }),
      async (c) => {
        calls += 1;
        await c.req.arrayBuffer();
        throw new Error('handler failed');
      },
    );
    failing.onError((_error, c) => c.text('fault', 500));
    for (let i = 0; i < 3; i += 1) expect((await failing.request('/', { method: 'POST', headers: { 'content-length': '5' }, body: 'abcde' })).status).toBe(500);
    expect(calls).toBe(3);
  });
});
