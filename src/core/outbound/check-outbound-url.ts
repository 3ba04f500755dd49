import { isLoopbackHttpUrl } from './loopback-http-url.ts';
import { literalHostRefusal } from './outbound-address.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { boundText } from '../audit/bound-audit-event.ts';

/** A URL the broker must not contact or trust. */
export class OutboundUrlError extends KeywayError {
  override readonly name = 'OutboundUrlError';
  readonly code = 'outbound_url_refused';
}

/**
 * Checks that a URL may be contacted or trusted: https, or http on loopback when the operator
 * turned that on for development, and a host written as an IP address must be a public one
 * (a name is checked by the address it resolves to, when the connection is made: see
 * outbound-fetch.ts). Used for issuer URLs, discovery, JWKS and the GitHub API alike.
 */
export function checkOutboundUrl(value: string, allowHttpLoopback: boolean): URL {
  if (!URL.canParse(value)) throw new OutboundUrlError(`${JSON.stringify(boundText(value))} is not an absolute URL`);
  const url = new URL(value);
  const named = namedUrl(url);
  if (url.username !== '' || url.password !== '') throw new OutboundUrlError(`${named} must not carry credentials`);
  if (url.protocol !== 'https:') {
    if (!isLoopbackHttpUrl(url)) throw new OutboundUrlError(`${named} must use https`);
    if (!allowHttpLoopback) throw new OutboundUrlError(`${named} uses http; set KEYWAY_ALLOW_HTTP_LOOPBACK=1 to allow loopback http issuers in development`);
  }
  const refusal = literalHostRefusal(url, allowHttpLoopback);
  if (refusal !== undefined) throw new OutboundUrlError(`${named}: ${refusal}`);
  return url;
}

/**
 * A URL as a refusal names it: bounded, without its user name and password, query or fragment, where a secret pasted
 * into a URL goes (`?private_token=…`). What it names is enough to find the line.
 */
export function namedUrl(url: URL): string {
  const named = new URL(url);
  named.username = '';
  named.password = '';
  named.search = '';
  named.hash = '';
  return boundText(named.href);
}
