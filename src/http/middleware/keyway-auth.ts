import type { MiddlewareHandler } from 'hono';
import { parseCredentials } from '../../core/authorization-credentials.ts';
import { DPOP_ALGORITHMS } from '../../core/dpop/dpop-proof.ts';
import { DpopReplayUnavailableError } from '../../core/dpop/dpop-replay.ts';
import { AccessTokenError, verifyAccessToken, type KeywayAccessToken, type VerifyAccessTokenOptions } from '../../core/mint/verify-access-token.ts';
import { NO_STORE } from '../oauth-errors.ts';

export type KeywayAuthVariables = { keywayToken: KeywayAccessToken };

export interface KeywayAuthOptions extends VerifyAccessTokenOptions {
  /**
   * The origin clients address this service at (`https://deploy.acme.dev`), when a proxy in front
   * of it makes the request URL the service sees another one: a DPoP proof's `htu` is checked
   * against this origin and the request's path. Without it, against the request URL as received.
   */
  readonly externalOrigin?: string;
}

/**
 * Protects a route with a keyway access token: `Authorization: Bearer <token>`, or for a token bound
 * to a DPoP key `Authorization: DPoP <token>` with a `DPoP` proof header (RFC 9449 §7), verified
 * as RFC 9068 requires. Answers RFC 6750 errors: 401 without a valid token or proof, 403 without
 * the scopes; 503 when whether the proof was used before cannot be checked. The verified claims
 * are on `c.get('keywayToken')`.
 */
export function keywayAuth(options: KeywayAuthOptions): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  const required = (options.scopes ?? []).join(' ');
  return async (c, next) => {
    const credentials = parseCredentials(c.req.header('authorization'));
    if (credentials === undefined) {
      c.header('WWW-Authenticate', 'Bearer');
      return c.json({ error: 'invalid_token', error_description: 'a Bearer access token is required' }, 401);
    }
    const { scheme, token } = credentials;
    const url = options.externalOrigin === undefined ? c.req.url : `${options.externalOrigin}${new URL(c.req.url).pathname}`;
    const dpop = scheme === 'DPoP' ? { proof: c.req.header('dpop'), method: c.req.method, url } : undefined;
    try {
      c.set('keywayToken', await verifyAccessToken(token, options, dpop));
    } catch (error) {
      if (error instanceof DpopReplayUnavailableError) {
        return c.json({ error: 'temporarily_unavailable', error_description: 'the DPoP proof cannot be checked right now; retry later' }, 503, NO_STORE);
      }
      if (!(error instanceof AccessTokenError)) throw error;
      const status = error.code === 'insufficient_scope' ? 403 : 401;
      const scope = error.code === 'insufficient_scope' && required !== '' ? `, scope="${required}"` : '';
      const algs = scheme === 'DPoP' ? `, algs="${DPOP_ALGORITHMS.join(' ')}"` : '';
      c.header('WWW-Authenticate', `${scheme} error="${error.code}"${scope}${algs}`);
      return c.json({ error: error.code, error_description: DESCRIPTIONS[error.code] }, status);
    }
    await next();
  };
}

const DESCRIPTIONS = {
  invalid_token: 'the access token is not valid',
  insufficient_scope: 'the token lacks a required scope',
  invalid_dpop_proof: 'the DPoP proof is not valid for this request and token',
} as const satisfies Record<AccessTokenError['code'], string>;
