import { compactVerify, decodeJwt, errors, type JWTVerifyGetKey } from 'jose';
import type { MiddlewareHandler } from 'hono';
import { parseCredentials } from '../../core/authorization-credentials.ts';
import { AccessTokenError } from '../../core/mint/verify-access-token.ts';
import type { RevocationList } from '../../core/revocation/revocation-list.ts';
import { refusalAnswer } from './keyway-auth.ts';
import { operatorClaimsOf, refusedCredential, type OperatorRefusals } from './operator-auth.ts';
import type { OperatorClaims } from '../../core/revocation/operator-refusal.ts';

/**
 * Refuses a keyway token the broker revoked (`POST /revoke`) wherever the broker takes its own tokens as credentials (the
 * operator APIs): 401 `invalid_token`, as an expired one. It runs before the route verifies the token's claims, and reads
 * the list only for a token the broker's own keys signed: a forged one naming any `jti` costs no read of the list (on
 * Workers, of a revocation shard) and is refused by the route as not valid, whether that `jti` was revoked or not. A
 * revocation list that cannot be read refuses too (503): whether the credential is still good is unknown. Each refusal
 * is recorded by `refusals`, naming the operator of the token.
 */
export function refuseRevokedTokens(revocations: RevocationList, keys: JWTVerifyGetKey, now: () => number, refusals: OperatorRefusals): MiddlewareHandler {
  return async (c, next) => {
    // Read as the route reads it (one parser): a credential this cannot read, the route cannot take either, so it goes on.
    const credentials = parseCredentials(c.req.header('authorization'));
    const signed = credentials === undefined ? undefined : await signedClaimsOf(credentials.token, keys);
    if (credentials === undefined || signed === undefined) return next();
    let revoked: boolean;
    try {
      revoked = await revocations.isRevoked(signed.jti, now());
    } catch {
      return c.json({ error: 'temporarily_unavailable', error_description: 'the revocation list is unavailable; retry later' }, 503, {
        'cache-control': 'no-store',
      });
    }
    if (!revoked) return next();
    const refused = new AccessTokenError('invalid_token', 'the access token was revoked');
    return refusalAnswer(c, await refusals(c, refusedCredential(c, credentials.token, refused, signed.operator)), {
      code: refused.code,
      description: refused.message,
      challenge: `${credentials.scheme} error="invalid_token"`,
    });
  };
}

/**
 * The `jti` (and operator, when it names one) of a token whose signature one of the broker's own keys verifies (its claims
 * are the route's to check), else undefined.
 */
async function signedClaimsOf(token: string, keys: JWTVerifyGetKey): Promise<{ readonly jti: string; readonly operator?: OperatorClaims } | undefined> {
  try {
    await compactVerify(token, keys, { algorithms: ['ES256'] });
    const claims = decodeJwt(token);
    if (typeof claims.jti !== 'string') return undefined;
    const operator = operatorClaimsOf(claims);
    return operator === undefined ? { jti: claims.jti } : { jti: claims.jti, operator };
  } catch (error) {
    if (error instanceof errors.JOSEError) return undefined;
    throw error;
  }
}
