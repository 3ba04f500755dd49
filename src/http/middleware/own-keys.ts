import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import type { KeyRing } from '../../core/mint/key-ring.ts';

/** Verifies with the broker's own key ring, never a remote fetch; follows the ring when it changes. */
export function ownKeys(keys: () => KeyRing): JWTVerifyGetKey {
  const sets = new WeakMap<KeyRing, JWTVerifyGetKey>();
  return (header, token) => {
    const ring = keys();
    let set = sets.get(ring);
    if (set === undefined) {
      set = createLocalJWKSet(ring.jwks);
      sets.set(ring, set);
    }
    return set(header, token);
  };
}
