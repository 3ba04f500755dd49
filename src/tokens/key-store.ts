import type { JWK } from 'jose';

/**
 * A signing key's life: `next` is published but does not sign yet, `current` signs,
 * `retired` is published until the last token it signed has expired.
 */
export type KeyState = 'next' | 'current' | 'retired';

export interface StoredSigningKey {
  readonly kid: string;
  readonly alg: 'ES256';
  readonly state: KeyState;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
}

/** Where the broker's signing keys persist (Node: the SQLite file; Workers: the state Durable Object). */
export interface KeyStore {
  listKeys(): Promise<StoredSigningKey[]>;
  /**
   * Stores `candidate` as the current key when the ring has no current key, atomically, and
   * returns the ring. When two processes start at once, one candidate wins and both use it.
   */
  initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]>;
}
