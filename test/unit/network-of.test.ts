import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { networkOf } from '../../src/core/limits/network-of.ts';

/** ipaddr.js's answer, taken the long way: what networkOf must say for every address. */
function viaIpaddr(address: string, prefixV4: number, prefixV6: number): string | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return `${ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toString()}/${prefixV4}`).toString()}/${prefixV4}`;
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/${prefixV6}`).toString()}/${prefixV6}`;
}

describe('networkOf', () => {
  it('names the network of a dotted-quad address at every prefix as ipaddr.js does', () => {
    const octet = () => Math.floor(Math.random() * 256);
    const addresses = [
      '0.0.0.0',
      '255.255.255.255',
      '127.0.0.1',
      '203.0.113.77',
      ...Array.from({ length: 200 }, () => [octet(), octet(), octet(), octet()].join('.')),
    ];
    for (const address of addresses) {
      for (let prefix = 0; prefix <= 32; prefix += 1) expect(networkOf(address, prefix, 48), `${address}/${prefix}`).toBe(viaIpaddr(address, prefix, 48));
    }
    expect(networkOf('203.0.113.77', 24, 48)).toBe('203.0.113.0/24');
    expect(networkOf('203.0.113.77', 32, 48)).toBe('203.0.113.77/32');
  });

  it('reads every other form as ipaddr.js reads it: leading zeros as octal, mapped IPv6 as IPv4, and refuses what is no address', () => {
    const addresses = [
      '010.0.0.1',
      '01.2.3.4',
      '1.2.3.09',
      '0x7f.0.0.1',
      '127.1',
      '::ffff:10.1.2.3',
      '2001:db8:1:2::1',
      'fe80::1%eth0',
      '256.0.0.1',
      '1.2.3',
      '1.2.3.4 ',
      'example.com',
      '',
    ];
    for (const address of addresses) expect(networkOf(address, 24, 48), address).toBe(viaIpaddr(address, 24, 48));
    expect(networkOf('010.0.0.1', 24, 48)).toBe('8.0.0.0/24');
    expect(networkOf('256.0.0.1', 24, 48)).toBeUndefined();
  });
});
