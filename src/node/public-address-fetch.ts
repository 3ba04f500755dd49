import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { addressRefusal, ForbiddenAddressError, literalHostRefusal } from '../issuers/outbound-address.ts';

/** Fetch's null body statuses: their responses carry no body. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * A DNS lookup that refuses a name when any address it resolves to is one the broker never
 * connects to (see addressRefusal). Node calls it while making the connection and connects to
 * exactly the addresses it returns, so what was checked is what is used: a second DNS answer
 * (rebinding) has nowhere to slip in.
 */
export function publicAddressLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error !== null) return callback(error, '');
      const refusal = addresses.length === 0
        ? 'no address'
        : addresses.map((found) => addressRefusal(found.address, allowLoopback)).find((why) => why !== undefined);
      if (refusal !== undefined) return callback(new ForbiddenAddressError(`${hostname} resolves to ${refusal}`), '');
      const [first] = addresses;
      if (options.all === true || first === undefined) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * The Node broker's outbound fetch: web-standard in and out, over node:http and node:https
 * with publicAddressLookup on every connection, and a host written as an IP address checked
 * the same way (Node does not look those up). Its own connection pools hold only sockets made
 * through that lookup. Redirects are never followed: a 3xx is returned as it came.
 *
 * Node's built-in fetch cannot take a lookup without undici's Agent, which Node does not
 * expose; with `undici` as a dependency this becomes `new Agent({ connect: { lookup } })`.
 */
export function publicAddressFetch(allowLoopback: boolean): typeof fetch {
  const lookup = publicAddressLookup(allowLoopback);
  const plain = { client: http, agent: new http.Agent({ keepAlive: true, lookup }) };
  const secure = { client: https, agent: new https.Agent({ keepAlive: true, lookup }) };
  return async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${url.protocol} URLs are not fetched`);
    const refusal = literalHostRefusal(url, allowLoopback);
    if (refusal !== undefined) throw new ForbiddenAddressError(`${url.origin}: ${refusal}`);
    const body = request.body === null ? undefined : Buffer.from(await request.arrayBuffer());
    const headers = {
      'user-agent': 'keyway',
      ...Object.fromEntries(request.headers),
      ...(body === undefined ? {} : { 'content-length': String(body.byteLength) }),
    };
    return new Promise<Response>((resolve, reject) => {
      const { client, agent } = url.protocol === 'https:' ? secure : plain;
      const outgoing = client.request(url, { method: request.method, headers, agent, signal: request.signal }, (incoming) => {
        const status = incoming.statusCode ?? 0;
        const answered = new Headers();
        const raw = incoming.rawHeaders;
        for (let index = 0; index + 1 < raw.length; index += 2) answered.append(raw[index] ?? '', raw[index + 1] ?? '');
        const nullBody = NULL_BODY_STATUSES.has(status) || request.method === 'HEAD';
        if (nullBody) incoming.resume();
        try {
          const stream = nullBody ? null : (Readable.toWeb(incoming) as ReadableStream<Uint8Array>);
          resolve(new Response(stream, { status, statusText: incoming.statusMessage ?? '', headers: answered }));
        } catch (error) {
          incoming.destroy();
          reject(error);
        }
      });
      outgoing.once('error', reject);
      outgoing.end(body);
    });
  };
}
