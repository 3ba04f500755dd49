import { CompactSign } from 'jose';
import type { SigningKey } from '../../core/mint/key-ring.ts';

export const ALERT_SIGNATURE_TYPE = 'keyway-alert+json';
export const SIGNATURE_HEADER = 'keyway-signature';

/**
 * A detached compact JWS (RFC 7515 Appendix F) over the exact body bytes, made with the
 * broker's signing key: `<protected>..<signature>`. Receivers put the base64url of the body
 * they received between the dots and verify it against the broker's JWKS, so they need no
 * shared secret, and nobody holding one can forge an alert.
 */
export async function signWebhookBody(body: string, key: SigningKey): Promise<string> {
  const jws = await new CompactSign(new TextEncoder().encode(body)).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ALERT_SIGNATURE_TYPE }).sign(key.key);
  const [header, , signature] = jws.split('.');
  return `${header}..${signature}`;
}
