import type { JWK } from 'jose';
import type { KeyRingPlan } from './key-life-cycle.ts';

/**
 * A signing key's life (src/core/mint/key-life-cycle.ts): `next` is published but does not sign
 * yet, `current` signs, `retired` is published until the last token it signed has expired,
 * `removed` is no longer published and its private part is destroyed; its public part is kept
 * so audit checkpoints it signed stay verifiable.
 */
export type KeyState = 'next' | 'current' | 'retired' | 'removed';

/**
 * The key ring holds one life cycle per algorithm: ES256 signs keyway's own tokens and every cloud
 * token a cloud takes it for; RS256 signs only for clouds that accept nothing else (Entra).
 */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** What is known about a key without opening its private part. Times in milliseconds since the epoch. */
export interface SigningKeyInfo {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly state: KeyState;
  /** When it was generated and published. */
  readonly createdAt: number;
  /** A next key: the earliest time it may start signing. */
  readonly activatesAt?: number;
  readonly activatedAt?: number;
  readonly retiredAt?: number;
  readonly removedAt?: number;
  /** A removed key an operator withdrew (compromised), rather than one upkeep removed once its tokens had expired. */
  readonly withdrawnAt?: number;
  readonly publicJwk: JWK;
}

export interface StoredSigningKey extends SigningKeyInfo {
  /** Absent once the key is removed. */
  readonly privateJwk?: JWK;
}

/** A key the store holds that nothing vouches for (the master key's attestation, a key the auditor pinned), and why. */
export interface UnvouchedKey {
  readonly kid: string;
  readonly why: string;
}

export type KeyTransition =
  | { readonly kind: 'publish'; readonly kid: string; readonly activatesAt: number }
  | { readonly kind: 'reschedule'; readonly kid: string; readonly activatesAt: number }
  | { readonly kind: 'activate'; readonly kid: string }
  | { readonly kind: 'retire'; readonly kid: string }
  | { readonly kind: 'remove'; readonly kid: string }
  | { readonly kind: 'withdraw'; readonly kid: string };

/**
 * What withdrawing a key did: it was not in the store; it was removed already (nothing changed); or it was withdrawn,
 * with the transitions made (`withdraw`, and for a current key the `activate` of its replacement, a fresh key `publish`ed
 * first when its ring had no next one). `key` is the key as it is now.
 */
export type KeyWithdrawal =
  | { readonly status: 'unknown' }
  | { readonly status: 'already_removed'; readonly key: SigningKeyInfo }
  | { readonly status: 'withdrawn'; readonly key: SigningKeyInfo; readonly transitions: readonly KeyTransition[] };

/** Where the broker's signing keys persist (Node: the SQLite file; Workers: the state Durable Object). */
export interface KeyStore {
  /** Every key with its private part opened (removed keys have none). */
  listKeys(): Promise<StoredSigningKey[]>;
  /** Every key, public parts only: needs no master key. */
  describeKeys(): Promise<SigningKeyInfo[]>;
  /**
   * Stores `candidate` as the current key when the ring has no current key of its algorithm,
   * atomically, and returns the ring. When two processes start at once, one candidate wins and both use it.
   */
  initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]>;
  /**
   * One round of the key life cycle: plans the transitions on the keys as they are inside one
   * transaction and applies them there, so concurrent rounds (two processes, two requests)
   * never produce two next or two current keys. Returns what changed.
   */
  advanceKeys(plan: KeyRingPlan): Promise<KeyTransition[]>;
  /**
   * Takes a key out of use at once (its private part leaked): removed (private part destroyed, public part and attestation
   * kept for the audit checkpoints it signed) and unpublished now, whatever its state. A current key's place is taken at
   * `now` by its ring's next key, or by a fresh one when there is none: no lead time. One transaction, as `advanceKeys`.
   */
  withdrawKey(kid: string, now: number): Promise<KeyWithdrawal>;
}
