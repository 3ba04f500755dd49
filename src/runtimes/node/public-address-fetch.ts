import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { addressRefusal, ForbiddenAddressError, literalHostRefusal } from '../../core/outbound/outbound-address.ts';

/*
 * undici, imported without taking over Node's own fetch. undici, when it loads, puts its Agent in
 * the process-wide slot Node's fetch reads its dispatcher from, unless that slot is already
 * filled; and Node's fetch fills it only on its first call. Loaded first, undici would route every
 * fetch in the process (the embedding application's, the tests') through another undici than
 * Node's, which refuses, for one, a Content-Length header Node's fetch passes on. So Node's fetch
 * is called once first, on a data: URL (no I/O). Only this file imports undici.
 */
await fetch('data:,');
const { Agent, fetch: undiciFetch } = await import('undici');

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
      const refusal =
        addresses.length === 0 ? 'no address' : addresses.map((found) => addressRefusal(found.address, allowLoopback)).find((why) => why !== undefined);
      if (refusal !== undefined) return callback(new ForbiddenAddressError(`${hostname} resolves to ${refusal}`), '');
      const [first] = addresses;
      if (options.all === true || first === undefined) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * The Node broker's outbound fetch: undici's fetch through an Agent whose every connection is
 * made with publicAddressLookup, and a host written as an IP address (which is never looked up)
 * checked the same way. Node's global fetch is undici too, but takes no lookup of its own.
 */
export function publicAddressFetch(allowLoopback: boolean): typeof fetch {
  const dispatcher = new Agent({ connect: { lookup: publicAddressLookup(allowLoopback) } });
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${url.protocol} URLs are not fetched`);
    const refusal = literalHostRefusal(url, allowLoopback);
    if (refusal !== undefined) throw new ForbiddenAddressError(`${url.origin}: ${refusal}`);
    try {
      // undici's own Request and Response classes have the web-standard shape of the global ones.
      return (await undiciFetch(input as Parameters<typeof undiciFetch>[0], {
        ...(init as Parameters<typeof undiciFetch>[1]),
        dispatcher,
      })) as unknown as Response;
    } catch (error) {
      // undici says only "fetch failed"; a refused address is the reason worth recording.
      if (error instanceof TypeError && error.cause instanceof ForbiddenAddressError) throw error.cause;
      throw error;
    }
  };
}
