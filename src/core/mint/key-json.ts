import type { KeyTransition, KeyWithdrawal, SigningKeyInfo } from './key-store.ts';

/** A signing key as `GET /v1/keys` and `keyway keys list --json` show it: public facts only, RFC 3339 times. */
export interface KeyJson {
  readonly kid: string;
  readonly alg: string;
  readonly state: SigningKeyInfo['state'];
  readonly published_at: string;
  /** A next key: when it may start signing; otherwise when it did. */
  readonly signs_from?: string;
  readonly retired_at?: string;
  /** When it left the JWKS, or for a retired key, when it is due to. */
  readonly unpublished_at?: string;
  /** A key an operator withdrew (its private part leaked): when. Removed then, whatever its state was. */
  readonly withdrawn_at?: string;
}

/** What `POST /v1/keys/rotate` and `keyway keys rotate --json` answer. */
export interface RotationJson {
  readonly transitions: readonly KeyTransition[];
  readonly next?: KeyJson;
}

const iso = (ms: number | undefined) => (ms === undefined ? {} : { at: new Date(ms).toISOString() });

export function keyJson(key: SigningKeyInfo, retainMs: number): KeyJson {
  const signsFrom = iso(key.state === 'next' ? key.activatesAt : key.activatedAt).at;
  const retired = iso(key.retiredAt).at;
  const unpublished = iso(key.removedAt ?? (key.retiredAt === undefined ? undefined : key.retiredAt + retainMs)).at;
  const withdrawn = iso(key.withdrawnAt).at;
  return {
    kid: key.kid,
    alg: key.alg,
    state: key.state,
    published_at: new Date(key.createdAt).toISOString(),
    ...(signsFrom === undefined ? {} : { signs_from: signsFrom }),
    ...(retired === undefined ? {} : { retired_at: retired }),
    ...(unpublished === undefined ? {} : { unpublished_at: unpublished }),
    ...(withdrawn === undefined ? {} : { withdrawn_at: withdrawn }),
  };
}

export function rotationJson(transitions: readonly KeyTransition[], keys: readonly SigningKeyInfo[], retainMs: number): RotationJson {
  // The ES256 ring's: keyway's own tokens change key when it activates; the RS256 ring rotates on the same schedule.
  const next = keys.find((key) => key.state === 'next' && key.alg === 'ES256');
  return { transitions, ...(next === undefined ? {} : { next: keyJson(next, retainMs) }) };
}

/** What `POST /v1/keys/withdraw` and `keyway keys withdraw --json` answer for a key the store holds. */
export interface WithdrawalJson {
  readonly status: 'withdrawn' | 'already_removed';
  readonly key: KeyJson;
  readonly transitions: readonly KeyTransition[];
  /** The current key of the withdrawn key's ring now: its replacement when the current key was withdrawn. */
  readonly current?: KeyJson;
}

export function withdrawalJson(withdrawal: Exclude<KeyWithdrawal, { status: 'unknown' }>, keys: readonly SigningKeyInfo[], retainMs: number): WithdrawalJson {
  const current = keys.find((key) => key.state === 'current' && key.alg === withdrawal.key.alg);
  return {
    status: withdrawal.status,
    key: keyJson(withdrawal.key, retainMs),
    transitions: withdrawal.status === 'withdrawn' ? withdrawal.transitions : [],
    ...(current === undefined ? {} : { current: keyJson(current, retainMs) }),
  };
}
