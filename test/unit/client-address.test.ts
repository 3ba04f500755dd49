import { describe, expect, it } from 'vitest';
import { clientAddress } from '../../src/runtimes/node/client-address.ts';
import { NO_TRUSTED_PROXIES, readTrustedProxies } from '../../src/config/trusted-proxies.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';

const proxies = readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.1 2001:db8:f::/48' });
const forwarded = readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/8', KEYWAY_TRUSTED_PROXY_HEADER: 'forwarded' });

describe('the client address behind trusted proxies', () => {
  it('ignores forwarding headers from a peer that is not a trusted proxy', () => {
    expect(clientAddress('198.51.100.9', '203.0.113.7', proxies)).toBe('198.51.100.9');
    expect(clientAddress('127.0.0.1', '203.0.113.7', NO_TRUSTED_PROXIES)).toBe('127.0.0.1');
    expect(clientAddress('11.0.0.1', '203.0.113.7', proxies)).toBe('11.0.0.1');
  });

  it('takes the client a trusted proxy names, and the peer itself when it names none', () => {
    expect(clientAddress('10.1.2.3', '203.0.113.7', proxies)).toBe('203.0.113.7');
    expect(clientAddress('192.0.2.1', '203.0.113.7', proxies)).toBe('203.0.113.7');
    expect(clientAddress('2001:db8:f::5', '2001:db8:1::77', proxies)).toBe('2001:db8:1::77');
    expect(clientAddress('10.1.2.3', undefined, proxies)).toBe('10.1.2.3');
  });

  it("compares a dual-stack socket's IPv4-mapped peer as IPv4", () => {
    expect(clientAddress('::ffff:10.1.2.3', '203.0.113.7', proxies)).toBe('203.0.113.7');
    expect(clientAddress('10.1.2.3', '::ffff:203.0.113.7', proxies)).toBe('203.0.113.7');
  });

  it('walks the chain from the right: entries the client wrote left of the first untrusted hop prove nothing', () => {
    // The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the address it saw.
    expect(clientAddress('10.1.2.3', '1.1.1.1, 203.0.113.7', proxies)).toBe('203.0.113.7');
    // A spoofed trusted address on the left is only more client-written text.
    expect(clientAddress('10.1.2.3', '10.9.9.9, 203.0.113.7', proxies)).toBe('203.0.113.7');
  });

  it('skips every trusted proxy of a chain of several', () => {
    // client → CDN edge (192.0.2.1) → load balancer (10.0.0.5) → keyway; the peer is the load balancer's inner side.
    expect(clientAddress('10.0.0.6', '203.0.113.7, 192.0.2.1, 10.0.0.5', proxies)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.6', '1.1.1.1, 203.0.113.7, 192.0.2.1', proxies)).toBe('203.0.113.7');
    // Every hop trusted: a caller inside the proxies' network, the furthest hop.
    expect(clientAddress('10.0.0.6', '10.4.4.4, 10.0.0.5', proxies)).toBe('10.4.4.4');
  });

  it('takes addresses with ports and brackets as proxies write them', () => {
    expect(clientAddress('10.1.2.3', '203.0.113.7:4711', proxies)).toBe('203.0.113.7');
    expect(clientAddress('10.1.2.3', '[2001:db8:1::77]:4711', proxies)).toBe('2001:db8:1::77');
    expect(clientAddress('10.1.2.3', '[2001:db8:1::77]', proxies)).toBe('2001:db8:1::77');
  });

  it.each([
    ['not an address', 'not-an-ip'],
    ['empty', ''],
    ['an empty hop', '203.0.113.7, , '],
    ['a host name', 'evil.example'],
    ['a short IPv4 form', '127.1'],
    ['a hex IPv4 form', '0x7f.0.0.1'],
    ['a port without a host', ':4711'],
    ['script', '<script>alert(1)</script>'],
    ['unknown', 'unknown'],
  ])('falls back to the peer on a malformed value before the client is reached (%s)', (_name, header) => {
    expect(clientAddress('10.1.2.3', header, proxies)).toBe('10.1.2.3');
  });

  it('ignores garbage left of the client: only the hops the proxies wrote are read', () => {
    expect(clientAddress('10.1.2.3', 'garbage, 203.0.113.7', proxies)).toBe('203.0.113.7');
  });

  it("reads RFC 7239 Forwarded when that is the proxies' header, and X-Forwarded-For is then never read", () => {
    expect(clientAddress('10.1.2.3', 'for=203.0.113.7;proto=https;by=10.1.2.3', forwarded)).toBe('203.0.113.7');
    expect(clientAddress('10.1.2.3', 'for=1.1.1.1, for="[2001:db8:1::77]:4711";host=keyway.example.com', forwarded)).toBe('2001:db8:1::77');
    expect(clientAddress('10.1.2.3', 'For="203.0.113.7:4711", for=10.0.0.5', forwarded)).toBe('203.0.113.7');
    // A quoted comma or semicolon in another parameter does not split the element.
    expect(clientAddress('10.1.2.3', 'for=203.0.113.7;by="a,b;c"', forwarded)).toBe('203.0.113.7');
  });

  it.each([
    ['not a pair', 'garbage, for=203.0.113.7', '203.0.113.7'],
    ['two for in one element', 'for=1.1.1.1;for=2.2.2.2, for=203.0.113.7', '203.0.113.7'],
    ['an unterminated quote', 'for="1.1.1.1, for=203.0.113.7', '203.0.113.7'],
    ["a quote left open before a proxy's quoted IPv6 address", 'for=1.1.1.1;x=", for="[2001:db8:1::77]:4711", for=10.0.0.5', '2001:db8:1::77'],
  ])('ignores a Forwarded element the client wrote left of its own, however malformed (%s): the client cannot pass as its proxy', (_name, header, client) => {
    expect(clientAddress('10.1.2.3', header, forwarded)).toBe(client);
  });

  it.each([
    ['an obfuscated node', 'for=_hidden'],
    ['unknown', 'for=unknown'],
    ['an element without for', 'proto=https'],
    ['two for in one element', 'for=203.0.113.7;for=198.51.100.1'],
    ['an unterminated quote', 'for="203.0.113.7'],
    ['an unquoted IPv6 address', 'for=2001:db8::1'],
    ['not a pair', 'for'],
  ])('falls back to the peer on a malformed Forwarded header (%s)', (_name, header) => {
    expect(clientAddress('10.1.2.3', header, forwarded)).toBe('10.1.2.3');
  });

  it('refuses a trusted proxy list it cannot read, naming the entry', () => {
    expect(() => readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/8, proxy.internal' })).toThrow(
      new ConfigError('KEYWAY_TRUSTED_PROXIES: "proxy.internal" is not an IP address or CIDR (203.0.113.7, 10.0.0.0/8, 2001:db8::/32)'),
    );
    expect(() => readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(ConfigError);
    expect(() => readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '10.0.0.0/8', KEYWAY_TRUSTED_PROXY_HEADER: 'x-real-ip' })).toThrow(ConfigError);
    expect(readTrustedProxies({})).toEqual(NO_TRUSTED_PROXIES);
  });

  const everyAddress = ['0.0.0.0/0', '::/0', '::ffff:0.0.0.0/96', '10.0.0.0/8, 0.0.0.0/0'];
  it.each(everyAddress)("refuses %s: trusting every address as a proxy believes every client's header", (list) => {
    expect(() => readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: list })).toThrow(ConfigError);
    expect(() => readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: list })).toThrow(/covers every (IPv4|IPv6) address/);
  });

  it('takes a proxy written as an IPv4-mapped address, as a dual-stack socket reports it, for the IPv4 address it is', () => {
    const mapped = readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '::ffff:10.0.0.5, ::ffff:192.168.0.0/112' });
    expect(clientAddress('10.0.0.5', '203.0.113.7', mapped)).toBe('203.0.113.7');
    expect(clientAddress('::ffff:10.0.0.5', '203.0.113.7', mapped)).toBe('203.0.113.7');
    expect(clientAddress('192.168.3.4', '203.0.113.7', mapped)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.6', '203.0.113.7', mapped)).toBe('10.0.0.6');
  });
});
