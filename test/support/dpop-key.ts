import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';

/** What a test may change about a proof, to make it wrong in exactly one way. */
export interface ProofOptions {
  readonly ath?: string;
  readonly nonce?: string;
  /** Seconds since the epoch; default now. */
  readonly iat?: number;
  readonly jti?: string;
  readonly typ?: string;
  /** Replaces the header's public JWK. */
  readonly jwk?: JWK;
  /** More or other claims. */
  readonly claims?: Record<string, unknown>;
  readonly header?: Partial<JWTHeaderParameters>;
}

/** A client's DPoP key (RFC 9449): real WebCrypto keys, so it runs in Node and inside workerd alike. */
export class DpopKey {
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
  /** RFC 7638 thumbprint: what `cnf.jkt` of a token bound to this key holds. */
  readonly jkt: string;
  readonly #privateKey: CryptoKey;
  readonly #alg: string;

  private constructor(alg: string, privateKey: CryptoKey, publicJwk: JWK, privateJwk: JWK, jkt: string) {
    this.#alg = alg;
    this.#privateKey = privateKey;
    this.publicJwk = publicJwk;
    this.privateJwk = privateJwk;
    this.jkt = jkt;
  }

  static async generate(alg: 'ES256' | 'PS256' | 'Ed25519' = 'ES256'): Promise<DpopKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    return new DpopKey(alg, privateKey, publicJwk, await exportJWK(privateKey), await calculateJwkThumbprint(publicJwk, 'sha256'));
  }

  /** A proof for `method url`, right unless options make it wrong. */
  proof(method: string, url: string, options: ProofOptions = {}): Promise<string> {
    const claims = {
      htm: method,
      htu: url,
      iat: options.iat ?? Math.floor(Date.now() / 1000),
      jti: options.jti ?? crypto.randomUUID(),
      ...(options.ath === undefined ? {} : { ath: options.ath }),
      ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
      ...options.claims,
    };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: this.#alg, typ: options.typ ?? 'dpop+jwt', jwk: options.jwk ?? this.publicJwk, ...options.header })
      .sign(this.#privateKey);
  }
}

/** RFC 9449 §4.2 `ath` of an access token, computed the test's own way (WebCrypto), not the broker's. */
export async function athOf(accessToken: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))));
}
