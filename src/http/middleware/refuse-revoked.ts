import { decodeJwt } from 'jose';
import type { MiddlewareHandler } from 'hono';
import type { RevocationList } from '../../core/revocation/revocation-list.ts';

const CREDENTIALS = /^(Bearer|DPoP) (\S+)$/;

/**
 * Refuses a keyway token the broker revoked (`POST /revoke`) wherever the broker takes its own tokens as credentials (the
 * operator APIs): 401 `invalid_token`, as an expired one. It runs before the route verifies the token, on the `jti` of the
 * token as sent: read unverified, it can only refuse, never admit, and a token that does not verify is refused by the route
 * anyway. A revocation list that cannot be read refuses too (503): whether the credential is still good is unknown.
 */
export function refuseRevokedTokens(revocations: RevocationList, now: () => number): MiddlewareHandler {
  return async (c, next) => {
    const [, scheme, token] = CREDENTIALS.exec(c.req.header('authorization') ?? '') ?? [];
    const jti = token === undefined ? undefined : jtiOf(token);
    if (jti === undefined) return next();
    let revoked: boolean;
    try {
      revoked = await revocations.isRevoked(jti, now());
    } catch {
      return c.json({ error: 'temporarily_unavailable', error_description: 'the revocation list is unavailable; retry later' }, 503, {
        'cache-control': 'no-store',
      });
    }
    if (!revoked) return next();
    c.header('WWW-Authenticate', `${scheme} error="invalid_token"`);
    return c.json({ error: 'invalid_token', error_description: 'the access token was revoked' }, 401);
  };
}

function jtiOf(token: string): string | undefined {
  try {
    const { jti } = decodeJwt(token);
    return typeof jti === 'string' ? jti : undefined;
  } catch {
    return undefined;
  }
}
