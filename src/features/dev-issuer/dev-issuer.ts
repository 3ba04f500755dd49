import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

/**
 * The development issuer: a stand-in for a CI system's OIDC issuer, so a newcomer can mint a
 * CI-shaped token and see a granted exchange without a CI runner. It exists only on the Node
 * broker started with KEYWAY_DEV=1, which also requires a loopback http KEYWAY_ISSUER, so a
 * production deployment can never trust it. Its key lives in the data directory.
 */
export const DEV_ISSUER_PATH = '/dev-issuer';
const KEY_FILE = 'dev-issuer-key.json';

export function devIssuerUrl(brokerIssuer: string): string {
  return `${brokerIssuer}${DEV_ISSUER_PATH}`;
}

export interface DevIssuerKey {
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
}

/** Loads the dev issuer's RS256 key from the data directory, creating it (mode 0600) on first use. */
export async function loadDevIssuerKey(dataDir: string): Promise<DevIssuerKey> {
  const path = join(dataDir, KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  let privateJwk: JWK;
  try {
    privateJwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
    privateJwk = await exportJWK(privateKey);
    try {
      writeFileSync(path, JSON.stringify(privateJwk), { flag: 'wx', mode: 0o600 });
    } catch (raced) {
      // Another process (the broker or `keyway dev token`) created it first: use theirs.
      if ((raced as NodeJS.ErrnoException).code !== 'EEXIST') throw raced;
      privateJwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
    }
  }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicParts } = privateJwk;
  const kid = await calculateJwkThumbprint(publicParts);
  return { privateJwk: { ...privateJwk, kid }, publicJwk: { ...publicParts, kid, alg: 'RS256', use: 'sig' } };
}

/** Signs a token as the dev issuer. `claims` must already hold everything but the time claims. */
export async function signDevToken(key: DevIssuerKey, claims: Record<string, unknown>, ttlSeconds: number, now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: String(key.privateJwk.kid) })
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + ttlSeconds)
    .setJti(crypto.randomUUID())
    .sign(await importJWK(key.privateJwk, 'RS256'));
}
