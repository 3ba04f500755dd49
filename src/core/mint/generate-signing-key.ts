import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { StoredSigningKey } from './key-store.ts';

/** A fresh ES256 key; its `kid` is its RFC 7638 thumbprint. */
export async function generateSigningKey(now: number): Promise<StoredSigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg: 'ES256',
    state: 'current',
    createdAt: now,
    publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256' },
  };
}
