import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { KeywayError } from '../errors/keyway-error.ts';

export interface VerifyAccessTokenOptions {
  /** The keyway broker's issuer URL (its KEYWAY_ISSUER). */
  readonly issuer: string;
  /** The audience this service answers to; the token's `aud` must contain it. */
  readonly audience: string;
  /** Scopes the token must all carry. */
  readonly scopes?: readonly string[];
  /** Where keys come from. Default: the broker's JWKS at `<issuer>/.well-known/jwks.json`, cached. */
  readonly keys?: JWTVerifyGetKey;
  /** Seconds of clock skew tolerated; default 30. */
  readonly clockToleranceSeconds?: number;
}

export interface KeywayAccessToken extends JWTPayload {
  readonly iss: string;
  readonly sub: string;
  readonly client_id: string;
  readonly scope: string;
  readonly jti: string;
  readonly exp: number;
}

export type AccessTokenErrorCode = 'invalid_token' | 'insufficient_scope';

/** An RFC 6750 error: `invalid_token` (401) or `insufficient_scope` (403). */
export class AccessTokenError extends KeywayError {
  override readonly name = 'AccessTokenError';
  readonly code: AccessTokenErrorCode;

  constructor(code: AccessTokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const remoteKeys = new Map<string, JWTVerifyGetKey>();

function brokerKeys(issuer: string): JWTVerifyGetKey {
  let keys = remoteKeys.get(issuer);
  if (keys === undefined) {
    keys = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    remoteKeys.set(issuer, keys);
  }
  return keys;
}

/**
 * RFC 9068 §4 validation of a keyway access token: `typ` at+jwt, exact `iss`, `aud` containing
 * ours, ES256 signature from the broker's keys, `exp`, then every required scope.
 */
export async function verifyAccessToken(token: string, options: VerifyAccessTokenOptions): Promise<KeywayAccessToken> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, options.keys ?? brokerKeys(options.issuer), {
      issuer: options.issuer,
      audience: options.audience,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      clockTolerance: options.clockToleranceSeconds ?? 30,
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
    }));
  } catch (error) {
    if (error instanceof errors.JOSEError) throw new AccessTokenError('invalid_token', error.message, { cause: error });
    throw error;
  }
  const granted = typeof payload['scope'] === 'string' ? payload['scope'].split(' ') : [];
  const missing = (options.scopes ?? []).filter((scope) => !granted.includes(scope));
  if (missing.length > 0) throw new AccessTokenError('insufficient_scope', `the token lacks scope ${missing.join(' ')}`);
  return payload as KeywayAccessToken;
}
