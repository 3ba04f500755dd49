import ipaddr from 'ipaddr.js';
import { ConfigError, type SettingsSource } from '../core/settings/read-settings.ts';

export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** The reverse proxies whose forwarding header is believed, and which header that is. */
export interface TrustedProxies {
  readonly ranges: readonly [Address, number][];
  /** The one header the proxies write; the other is never read, so a client cannot slip it past a proxy that does not strip it. */
  readonly header: 'x-forwarded-for' | 'forwarded';
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { ranges: [], header: 'x-forwarded-for' };

/**
 * KEYWAY_TRUSTED_PROXIES: addresses and CIDRs (comma- or space-separated) of the reverse proxies in
 * front of the Node broker; KEYWAY_TRUSTED_PROXY_HEADER: `x-forwarded-for` (default) or `forwarded`.
 */
export function readTrustedProxies(env: SettingsSource): TrustedProxies {
  const list = env['KEYWAY_TRUSTED_PROXIES'];
  const header = env['KEYWAY_TRUSTED_PROXY_HEADER'] || 'x-forwarded-for';
  if (header !== 'x-forwarded-for' && header !== 'forwarded') throw new ConfigError('KEYWAY_TRUSTED_PROXY_HEADER is x-forwarded-for or forwarded');
  const entries = typeof list === 'string' ? list.split(/[\s,]+/).filter((entry) => entry !== '') : [];
  return { ranges: entries.map(parseRange), header };
}

/**
 * Peers and hops are compared as IPv4 when a dual-stack socket reports `::ffff:10.0.0.1`, so a range
 * written IPv4-mapped is the IPv4 range it is. A range of every address is refused: it would make
 * any client a proxy, free to name itself in the header.
 */
function parseRange(entry: string): [Address, number] {
  const cidr = entry.includes('/') ? entry : `${entry}/${ipaddr.IPv6.isValid(entry) ? 128 : 32}`;
  if (!ipaddr.IPv4.isValidCIDRFourPartDecimal(cidr) && !ipaddr.IPv6.isValidCIDR(cidr)) {
    throw new ConfigError(`KEYWAY_TRUSTED_PROXIES: ${JSON.stringify(entry)} is not an IP address or CIDR (203.0.113.7, 10.0.0.0/8, 2001:db8::/32)`);
  }
  const [address, bits] = ipaddr.parseCIDR(cidr);
  const mapped = address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && bits >= 96;
  const range: [Address, number] = mapped ? [address.toIPv4Address(), bits - 96] : [address, bits];
  if (range[1] === 0) {
    const family = range[0].kind() === 'ipv4' ? 'IPv4' : 'IPv6';
    throw new ConfigError(`KEYWAY_TRUSTED_PROXIES: ${entry} covers every ${family} address, so every client could name itself; list the proxies' addresses`);
  }
  return range;
}

const LOOPBACK_V4: [Address, number] = [ipaddr.IPv4.parse('127.0.0.0'), 8];
const LOOPBACK_V6 = ipaddr.IPv6.parse('::1');
/** Docker's default bridge gateway: in a container, where the host's processes connect from. */
const DOCKER_BRIDGE_GATEWAY = ipaddr.IPv4.parse('172.17.0.1');

/**
 * The trusted ranges that hold an address any process on the broker's host can connect from, written as configured: a
 * loopback address; one of the host's own, `hostAddresses` (its interfaces': a process that connects to one comes from
 * it); or Docker's default bridge gateway, which the host's processes reach a container from. With a proxy on the same
 * host trusted by such an address, any local user names the client its forwarding header says, for the rate limits and
 * the audit record.
 */
export function hostLocalProxies(proxies: TrustedProxies, hostAddresses: readonly string[]): string[] {
  const own = [LOOPBACK_V6, DOCKER_BRIDGE_GATEWAY, ...hostAddresses.filter((address) => ipaddr.isValid(address)).map((address) => ipaddr.process(address))];
  return proxies.ranges
    .filter(
      ([address, bits]) =>
        (address.kind() === 'ipv4' && (address.match(LOOPBACK_V4) || LOOPBACK_V4[0].match(address, bits))) ||
        own.some((local) => local.kind() === address.kind() && local.match(address, bits)),
    )
    .map(([address, bits]) => `${address.toString()}/${bits}`);
}
