import { sha256Hex } from '../mint/sha256-hex.ts';

export interface ReplayKey {
  /** Lower-case hex SHA-256, so it is fixed in size whatever the token carries. */
  readonly key: string;
  readonly basis: 'jti' | 'signed part';
}

/**
 * What makes two exchanges "the same token": its `jti` within its issuer, or, for issuers
 * that send none (CircleCI, Buildkite, Bitbucket, Google), the signed part of the token
 * (header and payload). Never the whole token: its signature can be re-encoded with other
 * base64url padding bits, or for ECDSA replaced by its (r, n − s) twin, and still verify.
 */
export function replayKey(token: string, issuerUrl: string, jti: unknown): ReplayKey {
  if (typeof jti === 'string' && jti !== '') return { key: sha256Hex(`jti\n${issuerUrl}\n${jti}`), basis: 'jti' };
  const signedPart = token.slice(0, token.lastIndexOf('.'));
  return { key: sha256Hex(`jws\n${signedPart}`), basis: 'signed part' };
}
