import { Hono } from 'hono';
import { GRANT_TYPES } from '../../core/exchange/rfc7523-grants.ts';
import { JWKS_MAX_AGE_SECONDS } from '../../core/mint/key-life-cycle.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import { DPOP_ALGORITHMS } from '../../core/dpop/dpop-proof.ts';
import { SIGNING_ALGORITHMS } from '../../core/mint/key-store.ts';
import { CLOUD_TOKEN_CLAIMS } from '../../core/mint/mint-cloud-token.ts';

/** RFC 8414 authorization server metadata (also at the OpenID Connect discovery path) and the JWKS downstream services verify with. */
export function discoveryRoutes(deps: { readonly issuer: string; readonly keys: () => KeyRing }): Hono {
  const { issuer } = deps;
  const routes = new Hono();
  const metadata = {
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: [...GRANT_TYPES],
    token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
    // What a cloud's OIDC federation reads (AWS, Google, Entra): keyway issues ID-token-shaped cloud tokens (grant.cloud).
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...SIGNING_ALGORITHMS],
    claims_supported: CLOUD_TOKEN_CLAIMS,
    dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
  };
  routes.get('/.well-known/oauth-authorization-server', (c) => c.json(metadata));
  routes.get('/.well-known/openid-configuration', (c) => c.json(metadata));
  routes.get('/.well-known/jwks.json', (c) => {
    // The key life cycle publishes a next key at least this long before it signs (src/core/mint/key-life-cycle.ts).
    c.header('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    return c.json(deps.keys().jwks);
  });
  return routes;
}
