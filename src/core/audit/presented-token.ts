import { decodeJwt, type JWTPayload } from 'jose';
import type { Sha256Hex } from '../mint/sha256-hex.ts';
import type { AuditEvent } from './audit-event.ts';

/** Three base64url parts, the last at least as long as the shortest JWT signature (HS256's 32 bytes: 43 characters). */
const SIGNED_JWT = /^[\w-]+\.[\w-]+\.[\w-]{43,}$/;

/** What a record knows a presented token by: its SHA-256 when it is shaped as a signed JWT, else its length alone. */
export type TokenDigest = { readonly sha256: string } | { readonly length: number };

/**
 * What a record keeps of a token someone presented (a subject or actor token, an operator credential, a proxied call's),
 * never the token. One shaped as a signed JWT (a payload that decodes, a signature of at least SIGNED_JWT's length) is
 * kept by its SHA-256, by which its records are found: its signature makes it too random to guess back from the hash.
 * Anything else is kept by its length alone: people paste the wrong thing (a password, a short API key), and an unsalted
 * hash of a guessable secret, in a log auditors export, is reversed with a dictionary. `decoded`: its payload, when it
 * decodes (once: /token's verification reuses it).
 */
export function presentedToken(token: string, sha256Hex: Sha256Hex): { readonly digest: TokenDigest; readonly decoded?: JWTPayload } {
  let decoded: JWTPayload | undefined;
  try {
    decoded = decodeJwt(token);
  } catch {
    // Not a JWT: verification refuses it, and says why.
  }
  const digest = decoded !== undefined && SIGNED_JWT.test(token) ? { sha256: sha256Hex(token) } : { length: token.length };
  return decoded === undefined ? { digest } : { digest, decoded };
}

/** The record's `subject_token` of a presented token: its digest, and the `jti`, `iss` and `sub` it claims whether or not it verifies. */
export function describePresentedToken(
  token: string,
  sha256Hex: Sha256Hex,
): { readonly described: NonNullable<AuditEvent['subject_token']>; readonly decoded?: JWTPayload } {
  const { digest, decoded } = presentedToken(token, sha256Hex);
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  const [jti, iss, sub] = [text(decoded?.jti), text(decoded?.iss), text(decoded?.sub)];
  const described = {
    ...digest,
    ...(jti === undefined ? {} : { jti }),
    ...(iss === undefined ? {} : { claimed_iss: iss }),
    ...(sub === undefined ? {} : { claimed_sub: sub }),
  };
  return decoded === undefined ? { described } : { described, decoded };
}
