import ipaddr from 'ipaddr.js';
import type { Address, TrustedProxies } from '../../config/trusted-proxies.ts';

/**
 * The client's address: the socket's peer, unless that peer is a trusted proxy. Then the
 * proxies' forwarding header is walked from the right (the hop the peer itself added first),
 * trusted proxies are skipped, and the first address that is not one is the client: entries
 * further left were written by whoever sent the request and prove nothing. A header that is
 * missing, or malformed before that address is reached, leaves the peer's address.
 */
export function clientAddress(peer: string | undefined, header: string | undefined, trusted: TrustedProxies): string | undefined {
  // Cheapest first: with no proxies trusted or no header sent (the common case) the peer is not even parsed.
  if (peer === undefined || trusted.ranges.length === 0 || header === undefined || !isTrusted(peer, trusted)) return peer;
  const forwarded = trusted.header === 'forwarded';
  // Only the hops walked are read: the rest is whatever the client wrote.
  const hops = forwarded ? elementsFromTheRight(header) : header.split(',');
  let client: Address | undefined;
  for (let index = hops.length - 1; index >= 0; index -= 1) {
    const text = hops[index] ?? '';
    const hop = hopAddress(forwarded ? forwardedFor(text) : text.trim());
    if (hop === undefined) return peer;
    client = hop;
    if (!inRanges(hop, trusted)) break;
  }
  // Every hop a trusted proxy: the furthest one is the client (a request from inside the proxies' network).
  return client?.toString() ?? peer;
}

function isTrusted(address: string, trusted: TrustedProxies): boolean {
  return ipaddr.isValid(address) && inRanges(normalized(ipaddr.parse(address)), trusted);
}

function inRanges(address: Address, trusted: TrustedProxies): boolean {
  return trusted.ranges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports) as the IPv4 address it is. */
function normalized(address: Address): Address {
  return address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
}

/** One hop: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711` (ports as some proxies add them). */
function hopAddress(text: string | undefined): Address | undefined {
  if (text === undefined) return undefined;
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::\d{1,5})?$/.exec(text)?.[1];
  const host = bracketed ?? (/^[0-9.]+:\d{1,5}$/.test(text) ? text.slice(0, text.indexOf(':')) : text);
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return ipaddr.IPv4.parse(host);
  if (/^[0-9a-fA-F:.]+$/.test(host) && ipaddr.IPv6.isValid(host)) return normalized(ipaddr.IPv6.parse(host));
  return undefined;
}

/**
 * The `for=` of one element of an RFC 7239 `Forwarded` header: undefined when the element does not
 * parse or has no single `for=`. Obfuscated and `unknown` nodes come back as they are and fail as
 * addresses.
 */
function forwardedFor(element: string): string | undefined {
  const fors: string[] = [];
  for (const pair of splitOutsideQuotes(element, ';')) {
    const match = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)=("(?:[^"\\]|\\.)*"|[A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*$/.exec(pair);
    if (match === null) {
      if (pair.trim() === '') continue;
      return undefined;
    }
    const [, name = '', value = ''] = match;
    if (name.toLowerCase() === 'for') fors.push(value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value);
  }
  return fors.length === 1 ? fors[0] : undefined;
}

/**
 * The elements of an RFC 7239 `Forwarded` header, in order: split at its commas outside quoted
 * strings, scanning from the end. Each quote is paired from where it closes, so a quote a client
 * left open further left cannot run on into the elements right of it, the proxies'.
 */
function elementsFromTheRight(header: string): string[] {
  const reversed: string[] = [];
  let end = header.length;
  let quoted = false;
  for (let index = header.length - 1; index >= 0; index -= 1) {
    const char = header[index];
    if (char === '"') quoted = !quoted || escapedAt(header, index);
    else if (char === ',' && !quoted) {
      reversed.push(header.slice(index + 1, end));
      end = index;
    }
  }
  reversed.push(header.slice(0, end));
  return reversed.reverse();
}

/** Whether the character at `index` follows an odd run of backslashes (`\"` inside a quoted string). */
function escapedAt(text: string, index: number): boolean {
  let backslashes = 0;
  while (text[index - 1 - backslashes] === '\\') backslashes += 1;
  return backslashes % 2 === 1;
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quoted && char === '\\') index += 1;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && char === separator) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
