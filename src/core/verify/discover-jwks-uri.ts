import { fetchJson, type OutboundHttpOptions } from '../outbound/fetch-json.ts';
import { FetchError } from '../outbound/read-bounded.ts';
import { checkOutboundUrl } from '../outbound/check-outbound-url.ts';

/**
 * OpenID Connect Discovery 1.0 §4 for one issuer: the metadata must name exactly this issuer
 * (§4.3, compared as strings), and its `jwks_uri` must be fetchable under the same rules.
 * The JWKS found here is the only place keys for this issuer ever come from.
 */
export async function discoverJwksUri(issuerUrl: string, http: OutboundHttpOptions): Promise<string> {
  // §4.1: a trailing slash on the issuer is removed before appending the well-known path.
  const base = issuerUrl.endsWith('/') ? issuerUrl.slice(0, -1) : issuerUrl;
  const { body } = await fetchJson(`${base}/.well-known/openid-configuration`, http);
  if (typeof body !== 'object' || body === null) throw new FetchError(`discovery for ${issuerUrl} is not a JSON object`);
  const metadata = body as Record<string, unknown>;
  if (metadata['issuer'] !== issuerUrl) {
    throw new FetchError(`discovery for ${issuerUrl} names issuer ${JSON.stringify(metadata['issuer'])}`);
  }
  const jwksUri = metadata['jwks_uri'];
  if (typeof jwksUri !== 'string') throw new FetchError(`discovery for ${issuerUrl} has no jwks_uri`);
  try {
    checkOutboundUrl(jwksUri, http.allowHttpLoopback);
  } catch (cause) {
    throw new FetchError(`jwks_uri of ${issuerUrl} is not acceptable: ${(cause as Error).message}`, { cause });
  }
  return jwksUri;
}
