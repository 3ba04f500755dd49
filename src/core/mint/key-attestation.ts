import type { JWK } from 'jose';

/** The SecretBox purpose signing keys' attestations are made for. */
export const KEY_ATTESTATION_PURPOSE = 'signing-key-attestation';

/**
 * What a signing key's attestation covers: its kid, its algorithm and every member of its public
 * JWK (sorted, so the text is one whatever order the row keeps them in). It is made when the key
 * is generated and kept when the private part is removed, so the master key vouches for a
 * removed key too, whose private part can no longer be opened to show the public part is its own.
 */
export function keyAttestationText(key: { readonly kid: string; readonly alg: string; readonly publicJwk: JWK }): string {
  const jwk = Object.fromEntries(Object.entries(key.publicJwk).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ kid: key.kid, alg: key.alg, jwk });
}
