import type { MiddlewareHandler } from 'hono';
import { AccessTokenError, verifyAccessToken, type KeywayAccessToken, type VerifyAccessTokenOptions } from '../../core/mint/verify-access-token.ts';

export type KeywayAuthVariables = { keywayToken: KeywayAccessToken };

/**
 * Protects a route with a keyway access token: `Authorization: Bearer <token>`, verified as
 * RFC 9068 requires. Answers RFC 6750 errors: 401 without a valid token, 403 without the scopes.
 * The verified claims are on `c.get('keywayToken')`.
 */
export function keywayAuth(options: VerifyAccessTokenOptions): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  const required = (options.scopes ?? []).join(' ');
  return async (c, next) => {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(c.req.header('authorization') ?? '');
    if (match?.[1] === undefined) {
      c.header('WWW-Authenticate', 'Bearer');
      return c.json({ error: 'invalid_token', error_description: 'a Bearer access token is required' }, 401);
    }
    try {
      c.set('keywayToken', await verifyAccessToken(match[1], options));
    } catch (error) {
      if (!(error instanceof AccessTokenError)) throw error;
      const status = error.code === 'insufficient_scope' ? 403 : 401;
      const scope = error.code === 'insufficient_scope' && required !== '' ? `, scope="${required}"` : '';
      c.header('WWW-Authenticate', `Bearer error="${error.code}"${scope}`);
      return c.json(
        { error: error.code, error_description: error.code === 'insufficient_scope' ? 'the token lacks a required scope' : 'the access token is not valid' },
        status,
      );
    }
    await next();
  };
}
