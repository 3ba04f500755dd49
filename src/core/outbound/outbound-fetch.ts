import { ForbiddenAddressError, literalHostRefusal } from './outbound-address.ts';

/**
 * The broker's one way out (issuer discovery and JWKS, the GitHub API, alert webhooks): a URL
 * whose host is written as an IP address must be a public one (see addressRefusal) before
 * `connect` is called at all. Names are left to `connect`, which must refuse them at connect
 * time by the addresses they resolve to, so no DNS answer can change between check and use: on
 * Node that is publicAddressFetch (src/runtimes/node/public-address-fetch.ts); on Workers, Cloudflare's
 * network, whose fetch never reaches private addresses. A redirect is never followed, whatever
 * the caller asked: its target would be checked by no one here (on Node, an IP address is never
 * looked up), so the 3xx answer itself is what the caller gets.
 */
export function outboundFetch(connect: typeof fetch, allowLoopback: boolean): typeof fetch {
  return (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const refusal = literalHostRefusal(url, allowLoopback);
    if (refusal !== undefined) return Promise.reject(new ForbiddenAddressError(`${url.origin}: ${refusal}`));
    return connect(input, { ...init, redirect: 'manual' });
  };
}
