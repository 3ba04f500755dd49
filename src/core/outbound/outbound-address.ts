import ipaddr from 'ipaddr.js';
import { KeywayError } from '../errors/keyway-error.ts';

/** IPv4-compatible IPv6 (RFC 4291 §2.5.5.1, deprecated): ipaddr.js calls it unicast, but it is no public address. */
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');
/**
 * Public addresses that are a host's own services, not the internet: Azure's WireServer (168.63.129.16, reachable from
 * every Azure VM, serving its provisioning and extension configuration). ipaddr.js calls it unicast.
 */
const HOST_SERVICES = ['168.63.129.16'];

/**
 * Why the broker must not connect to `address`, or undefined when it may. Only public unicast
 * addresses pass (ipaddr.js `range()` is `unicast`), an IPv4-mapped IPv6 address judged as the
 * IPv4 address it carries; loopback too when `allowLoopback` (KEYWAY_ALLOW_HTTP_LOOPBACK=1, for
 * development). Everything else is refused: private and unique-local, link-local (the cloud
 * metadata service at 169.254.169.254), CGNAT, unspecified (0.0.0.0, ::), multicast, reserved,
 * and the IPv6 forms that carry an IPv4 address (NAT64, 6to4, Teredo). Not an IP address: refused.
 */
export function addressRefusal(address: string, allowLoopback: boolean): string | undefined {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  const parsed = ipaddr.process(address);
  const special = parsed.range();
  const range = special === 'unicast' && parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE) ? 'ipv4Compatible' : special;
  if (parsed.kind() === 'ipv4' && HOST_SERVICES.includes(parsed.toString()))
    return `${address} is a cloud host's own service; the broker only connects to public addresses`;
  if (range === 'unicast' || (range === 'loopback' && allowLoopback)) return undefined;
  const loopbackHint = range === 'loopback' ? ' (loopback only with KEYWAY_ALLOW_HTTP_LOOPBACK=1, for development)' : '';
  return `${address} is in the ${range} range; the broker only connects to public addresses${loopbackHint}`;
}

/**
 * Why the broker must not connect to the host of `url` when it is written as an IP address
 * (`https://169.254.169.254/`, `https://[::ffff:127.0.0.1]/`), or undefined. A name is judged
 * by the addresses it resolves to, when the connection is made.
 */
export function literalHostRefusal(url: URL, allowLoopback: boolean): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return ipaddr.isValid(host) ? addressRefusal(host, allowLoopback) : undefined;
}

/** An outbound call to an address the broker never connects to. */
export class ForbiddenAddressError extends KeywayError {
  override readonly name = 'ForbiddenAddressError';
  readonly code = 'outbound_address_forbidden';
}
