import { importPKCS8, SignJWT, type CryptoKey } from 'jose';

/**
 * The App's private key for RS256. GitHub hands out PKCS#1 keys (`BEGIN RSA PRIVATE KEY`), which
 * WebCrypto cannot import: those are wrapped into PKCS#8 (RFC 5208) first, without leaving DER.
 */
export async function importAppPrivateKey(pem: string): Promise<CryptoKey> {
  const pkcs1 = /-----BEGIN RSA PRIVATE KEY-----([\s\S]+?)-----END RSA PRIVATE KEY-----/.exec(pem);
  const pkcs8 = pkcs1 === null ? pem.trim() : derToPem(wrapPkcs1(base64ToBytes(pkcs1[1]!)));
  return importPKCS8(pkcs8, 'RS256', { extractable: false });
}

/**
 * The App JWT (what GitHub calls a JSON Web Token for a GitHub App): `iss` the App id, `iat` 60 s
 * in the past against clock drift, `exp` 9 minutes after that (GitHub refuses more than 10).
 */
export async function signAppJwt(key: CryptoKey, appId: string, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000) - 60;
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
    .setIssuer(appId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 9 * 60)
    .sign(key);
}

/** rsaEncryption, NULL: the AlgorithmIdentifier of a PKCS#8 RSA key. */
const RSA_ALGORITHM_IDENTIFIER = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

/** PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier, OCTET STRING (the PKCS#1 key) } */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  const octetString = [0x04, ...derLength(pkcs1.length), ...pkcs1];
  const body = [0x02, 0x01, 0x00, ...RSA_ALGORITHM_IDENTIFIER, ...octetString];
  return new Uint8Array([0x30, ...derLength(body.length), ...body]);
}

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return [0x80 | bytes.length, ...bytes];
}

function base64ToBytes(text: string): Uint8Array {
  return Uint8Array.from(atob(text.replace(/\s+/g, '')), (char) => char.charCodeAt(0));
}

function derToPem(der: Uint8Array): string {
  const base64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN PRIVATE KEY-----\n${base64.replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----`;
}
