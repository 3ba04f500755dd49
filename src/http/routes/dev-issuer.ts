import { Hono } from 'hono';
import type { DevIssuerKey } from '../../features/dev-issuer/dev-issuer.ts';

/** Discovery and JWKS for the dev issuer, mounted at DEV_ISSUER_PATH on the broker. */
export function devIssuerRoutes(issuerUrl: string, key: DevIssuerKey): Hono {
  const routes = new Hono();
  routes.get('/.well-known/openid-configuration', (c) =>
    c.json({
      issuer: issuerUrl,
      jwks_uri: `${issuerUrl}/jwks`,
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
    }),
  );
  routes.get('/jwks', (c) => c.json({ keys: [key.publicJwk] }));
  return routes;
}
