import type { JSONWebKeySet } from 'jose';

/**
 * What a cloud does before it verifies a token: fetch `<iss>/.well-known/openid-configuration`,
 * hold its `issuer` to `iss`, and fetch the JWKS at its `jwks_uri`, all within `timeoutMs`.
 * Throws on any failure; each fake turns that into its cloud's own error.
 */
export async function fetchIssuerKeys(issuer: string, timeoutMs = 5000): Promise<JSONWebKeySet> {
  const signal = AbortSignal.timeout(timeoutMs);
  const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`, { signal })).json()) as { jwks_uri?: unknown; issuer?: unknown };
  if (metadata.issuer !== issuer || typeof metadata.jwks_uri !== 'string') throw new Error(`${issuer} publishes no matching discovery document`);
  return (await (await fetch(metadata.jwks_uri, { signal })).json()) as JSONWebKeySet;
}
