import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { SigningAlgorithm, StoredSigningKey } from './key-store.ts';

/** A fresh key (ES256 by default, RS256 with a 2048-bit modulus); its `kid` is its RFC 7638 thumbprint. */
export async function generateSigningKey(now: number, alg: SigningAlgorithm = 'ES256'): Promise<StoredSigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg,
    state: 'current',
    createdAt: now,
    publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg },
  };
}
