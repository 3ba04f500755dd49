import ipaddr from 'ipaddr.js';

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** Four decimal octets without leading zeros: the form ipaddr.js reads as written and prints back alike (it reads `010` as octal). */
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** The network a client address belongs to (`203.0.113.0/24`, `2001:db8:1::/48`); IPv4-mapped IPv6 counts as IPv4. */
export function networkOf(address: string, prefixV4: number, prefixV6: number): string | undefined {
  // Most addresses (every socket's on an IPv4 listener): masked here, without ipaddr.js's parsing and printing twice over.
  const quad = DOTTED_QUAD.exec(address);
  if (quad !== null) return quadNetwork(quad, prefixV4);
  if (!ipaddr.isValid(address)) return undefined;
  const parsed = ipaddr.process(address);
  const prefix = parsed.kind() === 'ipv4' ? prefixV4 : prefixV6;
  const network =
    parsed.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}

/**
 * The client an address stands for: an IPv4 address itself, an IPv6 address's /64 (one host holds a whole /64, and an
 * address of its own per request is free to it). What the per-client rate limit and the address burst alert count by.
 */
export function clientNetwork(address: string): string {
  return networkOf(address, 32, 64) ?? address;
}

function quadNetwork(quad: RegExpExecArray, prefix: number): string {
  const value = ((Number(quad[1]) << 24) | (Number(quad[2]) << 16) | (Number(quad[3]) << 8) | Number(quad[4])) >>> 0;
  // A shift by 32 is a shift by 0 in JavaScript: /0 keeps no bit.
  const network = prefix === 0 ? 0 : (value & (0xffffffff << (32 - prefix))) >>> 0;
  return `${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${prefix}`;
}
