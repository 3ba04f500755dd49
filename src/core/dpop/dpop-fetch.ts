import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { accessTokenHash } from './dpop-proof.ts';

/**
 * A client's DPoP key: the private half never leaves WebCrypto (non-extractable), the public half goes in every proof.
 * It is a WebCrypto `CryptoKeyPair`, so OAuth clients that take one (openid-client's `getDPoPHandle`) can sign with it too.
 */
export interface DpopKeyPair {
  readonly alg: 'ES256';
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** A fresh ES256 key pair whose private key cannot be exported, read or logged: only used to sign. */
export async function generateDpopKey(): Promise<DpopKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: false });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { alg: 'ES256', privateKey, publicKey, publicJwk: { kty, crv, x, y } };
}

/**
 * An RFC 9449 proof for one request: `htm`, `htu` (without query and fragment), `iat`, a fresh `jti`, `ath` with an access token
 * (or `ath` itself, for a signer that is only given the token's hash), the server's nonce.
 */
export function createDpopProof(
  key: DpopKeyPair,
  request: { readonly method: string; readonly url: string; readonly accessToken?: string; readonly ath?: string; readonly nonce?: string },
): Promise<string> {
  const url = new URL(request.url);
  const ath = request.accessToken === undefined ? request.ath : accessTokenHash(request.accessToken);
  return new SignJWT({
    htm: request.method.toUpperCase(),
    htu: `${url.origin}${url.pathname}`,
    jti: crypto.randomUUID(),
    ...(ath === undefined ? {} : { ath }),
    ...(request.nonce === undefined ? {} : { nonce: request.nonce }),
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/**
 * `fetch` with DPoP: every request gets a fresh proof, and with `accessToken` the header
 * `Authorization: DPoP <token>` and the proof's `ath`. A server that answers `use_dpop_nonce` with
 * a `DPoP-Nonce` header (RFC 9449 §8, §9) is asked once more with that nonce, which is then sent
 * with every later request until the server names another.
 */
export function dpopFetch(key: DpopKeyPair, options: { readonly accessToken?: string; readonly fetch?: typeof fetch } = {}): typeof fetch {
  const send = options.fetch ?? fetch;
  let nonce: string | undefined;
  return async (input, init) => {
    const request = new Request(input, init);
    const body = request.body === null ? undefined : await request.arrayBuffer();
    const attempt = async (): Promise<Response> => {
      const headers = new Headers(request.headers);
      const proof = await createDpopProof(key, {
        method: request.method,
        url: request.url,
        ...(options.accessToken === undefined ? {} : { accessToken: options.accessToken }),
        ...(nonce === undefined ? {} : { nonce }),
      });
      headers.set('dpop', proof);
      if (options.accessToken !== undefined) headers.set('authorization', `DPoP ${options.accessToken}`);
      const response = await send(request.url, { method: request.method, headers, ...(body === undefined ? {} : { body }) });
      nonce = response.headers.get('dpop-nonce') ?? nonce;
      return response;
    };
    const first = await attempt();
    return (await asksForNonce(first)) ? attempt() : first;
  };
}

/** `use_dpop_nonce`, from an authorization server (a 400 body) or a resource server (a 401 challenge). */
async function asksForNonce(response: Response): Promise<boolean> {
  if (response.headers.get('dpop-nonce') === null) return false;
  if (response.status === 401) return /error="use_dpop_nonce"/.test(response.headers.get('www-authenticate') ?? '');
  if (response.status !== 400) return false;
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { error?: unknown } | undefined;
  return body?.error === 'use_dpop_nonce';
}
