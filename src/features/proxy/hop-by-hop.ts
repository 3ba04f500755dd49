/** Hop-by-hop headers (RFC 9110 §7.6.1, and HTTP/2's connection settings): a proxy passes none of them on, either way. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'http2-settings',
]);

/** The header names a `Connection` header lists: hop-by-hop for this message too. */
export function connectionNamed(connection: string | undefined): ReadonlySet<string> {
  return new Set(
    (connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ''),
  );
}

/** Whether a header (its name in lower case) is hop-by-hop for a message whose `Connection` listed `named`; every `Proxy-*` is. */
export function isHopByHop(lower: string, named: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || named.has(lower);
}
