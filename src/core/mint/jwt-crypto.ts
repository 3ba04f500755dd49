import { jwtVerify, SignJWT, type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { SigningKey } from './key-ring.ts';
import { sha256Hex, type Sha256Hex } from './sha256-hex.ts';

/**
 * jose's JWT verification options, but for `typ` and `crit`, which the exchange never sets, and `audience`, which keyway
 * judges itself where the policies decide (verify-subject-token.ts): no adapter has to handle them.
 */
export type JwtVerifyOptions = Omit<JWTVerifyOptions, 'typ' | 'crit' | 'audience'>;

export interface VerifiedJwt {
  readonly payload: JWTPayload;
  readonly protectedHeader: JWTHeaderParameters;
}

/**
 * The crypto on the exchange's hot path: verifying the subject token, signing the access token,
 * hashing the subject token for its audit record.
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
  /** sha256Hex, or the runtime's native twin (the same hex for the same text). */
  readonly sha256Hex: Sha256Hex;
}

export const JOSE_JWT_CRYPTO: JwtCrypto = {
  verify: async (token, keys, options) => {
    const { payload, protectedHeader } = await jwtVerify(token, keys, options);
    return { payload, protectedHeader };
  },
  sign: (header, payload, key) => new SignJWT(payload).setProtectedHeader(header).sign(key.key),
  sha256Hex,
};
