import { importJWK, type CryptoKey, type JSONWebKeySet } from 'jose';
import { generateSigningKey } from './generate-signing-key.ts';
import type { KeyStore, StoredSigningKey } from './key-store.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'ES256';
  readonly key: CryptoKey;
}

export class NoSigningKeyError extends KeywayError {
  override readonly name = 'NoSigningKeyError';
  readonly code = 'no_signing_key';
}

/** The broker's signing keys, loaded from their store: the current one signs, all published ones verify. */
export class KeyRing {
  readonly #signing: SigningKey;
  readonly #jwks: JSONWebKeySet;
  readonly #everKeys: JSONWebKeySet;

  private constructor(signing: SigningKey, jwks: JSONWebKeySet, everKeys: JSONWebKeySet) {
    this.#signing = signing;
    this.#jwks = jwks;
    this.#everKeys = everKeys;
  }

  /** Loads the ring, generating and storing the first key on first start. */
  static async open(store: KeyStore, now: number): Promise<KeyRing> {
    let keys = await store.listKeys();
    if (!keys.some((key) => key.state === 'current')) keys = await store.initializeKeys(await generateSigningKey(now));
    return KeyRing.from(keys);
  }

  static async from(keys: readonly StoredSigningKey[]): Promise<KeyRing> {
    const current = keys.find((key) => key.state === 'current');
    if (current?.privateJwk === undefined) throw new NoSigningKeyError('the key store holds no current signing key');
    const key = await importJWK(current.privateJwk, current.alg);
    if (!('type' in key)) throw new NoSigningKeyError('the current signing key is not an asymmetric key');
    return new KeyRing(
      { kid: current.kid, alg: current.alg, key },
      { keys: keys.filter((stored) => stored.state !== 'removed').map((stored) => stored.publicJwk) },
      { keys: keys.map((stored) => stored.publicJwk) },
    );
  }

  get signing(): SigningKey {
    return this.#signing;
  }

  /** The published JWKS: the next key, the current one, and retired ones that may still have live tokens. */
  get jwks(): JSONWebKeySet {
    return this.#jwks;
  }

  /**
   * Every key the broker has held, removed ones included: what verifies audit checkpoints,
   * which outlive the tokens a key signed. Never for access tokens.
   */
  get checkpointKeys(): JSONWebKeySet {
    return this.#everKeys;
  }
}
