import { jwtVerify, SignJWT, type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { SigningKey } from './key-ring.ts';

/** jose's JWT verification options, but for `typ` and `crit`, which the exchange never sets: no adapter has to handle them. */
export type JwtVerifyOptions = Omit<JWTVerifyOptions, 'typ' | 'crit'>;

export interface VerifiedJwt {
  readonly payload: JWTPayload;
  readonly protectedHeader: JWTHeaderParameters;
}

/**
 * The crypto on the exchange's hot path: verifying the subject token and signing the access token.
 * Two adapters: `JOSE_JWT_CRYPTO` (jose on
 * WebCrypto, every runtime; Workers use it) and, on Node, `NODE_JWT_CRYPTO`
 * (runtimes/node/node-jwt-crypto.ts: node:crypto KeyObjects, synchronous, the same checks in the
 * same order with the same errors). The shared suites run each adapter on its runtime.
 */
export interface JwtCrypto {
  /** jose's `jwtVerify(token, keys, options)`: header, key selection by `keys`, signature, claims; throws jose's errors. */
  verify(token: string, keys: JWTVerifyGetKey, options: JwtVerifyOptions): Promise<VerifiedJwt>;
  /** A compact JWS of exactly `payload` (JSON) under exactly `header`, signed with `key`. */
  sign(header: JWTHeaderParameters & { readonly alg: SigningKey['alg'] }, payload: JWTPayload, key: SigningKey): Promise<string>;
}

export const JOSE_JWT_CRYPTO: JwtCrypto = {
  verify: async (token, keys, options) => {
    const { payload, protectedHeader } = await jwtVerify(token, keys, options);
    return { payload, protectedHeader };
  },
  sign: (header, payload, key) => new SignJWT(payload).setProtectedHeader(header).sign(key.key),
};
