import { importJWK, type CryptoKey, type JSONWebKeySet } from 'jose';
import { generateSigningKey } from './generate-signing-key.ts';
import { SIGNING_ALGORITHMS, type KeyStore, type SigningAlgorithm, type StoredSigningKey } from './key-store.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: CryptoKey;
}

/** A key an operator withdrew (KeyStore.withdrawKey), and when, in ms since the epoch. */
export interface KeyWithdrawn {
  readonly kid: string;
  readonly withdrawnAt: number;
}

export class NoSigningKeyError extends KeywayError {
  override readonly name = 'NoSigningKeyError';
  readonly code = 'no_signing_key';
}

/** The broker's signing keys, loaded from their store: the current one of each algorithm signs, all published ones verify. */
export class KeyRing {
  readonly #signing: ReadonlyMap<SigningAlgorithm, SigningKey>;
  readonly #jwks: JSONWebKeySet;
  readonly #everKeys: JSONWebKeySet;
  readonly #withdrawals: readonly KeyWithdrawn[];

  private constructor(signing: ReadonlyMap<SigningAlgorithm, SigningKey>, jwks: JSONWebKeySet, everKeys: JSONWebKeySet, withdrawals: readonly KeyWithdrawn[]) {
    this.#signing = signing;
    this.#jwks = jwks;
    this.#everKeys = everKeys;
    this.#withdrawals = withdrawals;
  }

  /** Loads the ring, generating and storing the first key of each algorithm on first start (and the RS256 one after an upgrade). */
  static async open(store: KeyStore, now: number): Promise<KeyRing> {
    let keys = await store.listKeys();
    for (const alg of SIGNING_ALGORITHMS) {
      if (!keys.some((key) => key.state === 'current' && key.alg === alg)) keys = await store.initializeKeys(await generateSigningKey(now, alg));
    }
    return KeyRing.from(keys);
  }

  static async from(keys: readonly StoredSigningKey[]): Promise<KeyRing> {
    const signing = new Map<SigningAlgorithm, SigningKey>();
    for (const current of keys.filter((stored) => stored.state === 'current')) {
      if (current.privateJwk === undefined) continue;
      const key = await importJWK(current.privateJwk, current.alg);
      if (!('type' in key)) throw new NoSigningKeyError(`the current ${current.alg} signing key is not an asymmetric key`);
      signing.set(current.alg, { kid: current.kid, alg: current.alg, key });
    }
    if (!signing.has('ES256')) throw new NoSigningKeyError('the key store holds no current signing key');
    return new KeyRing(
      signing,
      { keys: keys.filter((stored) => stored.state !== 'removed').map((stored) => stored.publicJwk) },
      { keys: keys.map((stored) => stored.publicJwk) },
      keys.flatMap(({ kid, withdrawnAt }) => (withdrawnAt === undefined ? [] : [{ kid, withdrawnAt }])),
    );
  }

  /** The ES256 key: keyway's own access tokens, audit checkpoints, alert webhooks. */
  get signing(): SigningKey {
    return this.signingFor('ES256');
  }

  /** The current key of `alg`, for a cloud that takes only that algorithm. */
  signingFor(alg: SigningAlgorithm): SigningKey {
    const key = this.#signing.get(alg);
    if (key === undefined) throw new NoSigningKeyError(`the key store holds no current ${alg} signing key`);
    return key;
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

  /** Every key an operator withdrew, and when: what a pruning anchor signs, for the withdrawals whose records it prunes. */
  get withdrawals(): readonly KeyWithdrawn[] {
    return this.#withdrawals;
  }
}
