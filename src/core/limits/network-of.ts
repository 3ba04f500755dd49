import ipaddr from 'ipaddr.js';

/** The network a client address belongs to (`203.0.113.0/24`, `2001:db8:1::/48`); IPv4-mapped IPv6 counts as IPv4. */
export function networkOf(address: string, prefixV4: number, prefixV6: number): string | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  const parsed = ipaddr.process(address);
  const prefix = parsed.kind() === 'ipv4' ? prefixV4 : prefixV6;
  const network =
    parsed.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}
