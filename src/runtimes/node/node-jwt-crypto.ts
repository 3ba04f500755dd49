import { isUtf8 } from 'node:buffer';
import { constants, createHash, createHmac, KeyObject, sign, verify, type SignKeyObjectInput, type VerifyKeyObjectInput } from 'node:crypto';
import { base64url, errors, UnsecuredJWT, type CryptoKey, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { JwtCrypto, JwtVerifyOptions, VerifiedJwt } from '../../core/mint/jwt-crypto.ts';
import type { HmacSha256 } from '../../core/audit/record-mac.ts';

/**
 * The JWS algorithms, as jose's WebCrypto table has them (`subtle`: what a key must have been
 * imported as) and as node:crypto runs them. HMAC is absent: a JWKS never yields secret keys.
 */
interface Algorithm {
  readonly subtle: { readonly name: string; readonly hash?: string; readonly namedCurve?: string };
  /** node:crypto's digest name; null for Ed25519, which hashes itself. */
  readonly digest: string | null;
  readonly options: Omit<VerifyKeyObjectInput, 'key'>;
  /** RSA: jose refuses keys under 2048 bits. */
  readonly rsa?: true;
}

const rsa = (bits: number): Algorithm => ({ subtle: { name: 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` }, digest: `sha${bits}`, options: {}, rsa: true });
const pss = (bits: number): Algorithm => ({
  subtle: { name: 'RSA-PSS', hash: `SHA-${bits}` },
  digest: `sha${bits}`,
  options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bits / 8 },
  rsa: true,
});
const ecdsa = (curve: string, bits: number): Algorithm => ({
  subtle: { name: 'ECDSA', namedCurve: curve },
  digest: `sha${bits}`,
  options: { dsaEncoding: 'ieee-p1363' },
});
const ed25519: Algorithm = { subtle: { name: 'Ed25519' }, digest: null, options: {} };

const ALGORITHMS: Readonly<Record<string, Algorithm>> = {
  RS256: rsa(256),
  RS384: rsa(384),
  RS512: rsa(512),
  PS256: pss(256),
  PS384: pss(384),
  PS512: pss(512),
  ES256: ecdsa('P-256', 256),
  ES384: ecdsa('P-384', 384),
  ES512: ecdsa('P-521', 512),
  EdDSA: ed25519,
  Ed25519: ed25519,
};
const MIN_RSA_BITS = 2048;

/** Each CryptoKey's node:crypto handle, taken once: a JWKS key when jose first imports it, a signing key when it first signs. */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();
function keyObjectOf(key: CryptoKey): KeyObject {
  let keyObject = keyObjects.get(key);
  if (keyObject === undefined) {
    keyObject = KeyObject.from(key as Parameters<typeof KeyObject.from>[0]);
    keyObjects.set(key, keyObject);
  }
  return keyObject;
}

/** What jose's `isObject` accepts: a plain object. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Object.prototype.toString.call(value) !== '[object Object]') return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const NON_ASCII = /[^\p{ASCII}]/u;

/** A canonical base64url segment's bytes, decoded by Buffer as jose decodes them, in a sixth of the time; undefined for any other segment, jose's to decode or refuse. */
function canonicalBytes(segment: string): Buffer | undefined {
  const bytes = Buffer.from(segment, 'base64url');
  return bytes.toString('base64url') === segment ? bytes : undefined;
}

function decodeBase64url(value: string, label: string): Uint8Array {
  const canonical = canonicalBytes(value);
  if (canonical !== undefined) return canonical;
  try {
    return base64url.decode(value);
  } catch (cause) {
    throw new errors.JWSInvalid(`Failed to base64url decode the ${label}`, { cause });
  }
}

/**
 * The JSON in a base64url segment, decoded by Buffer in a fifth of jose's time, when the segment is one jose decodes
 * to the same value: canonical base64url (Buffer skips what atob refuses) of strict UTF-8 (Buffer replaces what jose's
 * fatal TextDecoder refuses). Undefined for any other segment, or text that is not JSON (a byte order mark, which jose
 * drops, is not), which jose's own code then decodes or refuses.
 */
function parseCanonicalSegment(segment: string): unknown {
  const bytes = canonicalBytes(segment);
  if (bytes === undefined || !isUtf8(bytes)) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

function parseProtectedHeader(encoded: string): JWTHeaderParameters {
  const canonical = parseCanonicalSegment(encoded);
  if (isPlainObject(canonical)) return canonical as JWTHeaderParameters;
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictUtf8.decode(base64url.decode(encoded)));
  } catch (cause) {
    throw new errors.JWSInvalid('JWS Protected Header is invalid', { cause });
  }
  if (!isPlainObject(parsed)) throw new errors.JWSInvalid('JWS Protected Header is invalid');
  return parsed as JWTHeaderParameters;
}

/**
 * RFC 7515 §4.1.11 as jose checks it for a compact JWS (whose header is all protected): `crit`
 * names only `b64`, the one extension jose knows, which must then be a boolean; whether the
 * payload is base64url-encoded comes back.
 */
function base64urlPayload(header: JWTHeaderParameters): boolean {
  const { crit } = header;
  if (crit === undefined) return true;
  if (!Array.isArray(crit) || crit.length === 0 || crit.some((name) => typeof name !== 'string' || name.length === 0)) {
    throw new errors.JWSInvalid('"crit" (Critical) Header Parameter MUST be an array of non-empty strings when present');
  }
  for (const name of crit) {
    if (name !== 'b64') throw new errors.JOSENotSupported(`Extension Header Parameter "${name}" is not recognized`);
    if (!Object.hasOwn(header, name) || header[name] === undefined) throw new errors.JWSInvalid(`Extension Header Parameter "${name}" is missing`);
  }
  if (typeof header.b64 !== 'boolean') throw new errors.JWSInvalid('The "b64" (base64url-encode payload) Header Parameter must be a boolean');
  return header.b64;
}

/**
 * jose's checks of a verification key against the algorithm (prepareKey, checkCryptoKey,
 * checkModulusLength), for the CryptoKeys a JWKS yields: jose would also take a KeyObject or a
 * JWK here, which the broker never passes.
 */
function checkVerificationKey(key: unknown, alg: string, algorithm: Algorithm): asserts key is CryptoKey {
  if ((key as { [Symbol.toStringTag]?: unknown } | null)?.[Symbol.toStringTag] !== 'CryptoKey')
    throw new TypeError(`Key for the ${alg} algorithm must be a CryptoKey here`);
  const cryptoKey = key as CryptoKey;
  if (cryptoKey.type !== 'public') throw new TypeError(`CryptoKey instances must be of type "public" for the ${alg} algorithm`);
  const actual = cryptoKey.algorithm as { name: string; hash?: { name: string }; namedCurve?: string; modulusLength?: number };
  const unusable = (name: string, prop = 'algorithm.name') => new TypeError(`CryptoKey does not support this operation, its ${prop} must be ${name}`);
  if (actual.name !== algorithm.subtle.name) throw unusable(algorithm.subtle.name);
  if (algorithm.subtle.hash !== undefined && actual.hash?.name !== algorithm.subtle.hash) throw unusable(algorithm.subtle.hash, 'algorithm.hash');
  if (algorithm.subtle.namedCurve !== undefined && actual.namedCurve !== algorithm.subtle.namedCurve)
    throw unusable(algorithm.subtle.namedCurve, 'algorithm.namedCurve');
  if (!cryptoKey.usages.includes('verify')) throw new TypeError('CryptoKey does not support this operation, its usages must include verify.');
  if (algorithm.rsa === true && !((actual.modulusLength ?? 0) >= MIN_RSA_BITS)) {
    throw new TypeError(`${alg} requires key modulusLength to be ${MIN_RSA_BITS} bits or larger`);
  }
}

function algorithmOf(alg: string): Algorithm {
  // Own members only, as in jose's table, which has no prototype: `toString` or `constructor` names no algorithm.
  const algorithm = Object.hasOwn(ALGORITHMS, alg) ? ALGORITHMS[alg] : undefined;
  if (algorithm === undefined) throw new errors.JOSENotSupported(`alg ${alg} is not supported either by JOSE or your javascript runtime`);
  return algorithm;
}

const epochSeconds = (date: Date | undefined): number => Math.floor((date ?? new Date()).getTime() / 1000);
const finite = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/**
 * Whether jose's claims checks (validateClaimsSet) accept `claims` under `options`, restated without its copies for
 * options in numbers, as the exchange passes them: any other option is false here, as is every claim jose would
 * refuse, and jose then judges the token and says why. True only where jose accepts.
 */
function claimsAccepted(claims: JWTPayload, options: JwtVerifyOptions): boolean {
  const { requiredClaims = [], issuer, subject, maxTokenAge, clockTolerance = 0 } = options;
  const now = epochSeconds(options.currentDate);
  if (!finite(clockTolerance) || clockTolerance < 0 || !finite(now) || (maxTokenAge !== undefined && !(finite(maxTokenAge) && maxTokenAge >= 0))) return false;
  for (const claim of requiredClaims) if (!Object.hasOwn(claims, claim)) return false;
  if (issuer !== undefined && !(Object.hasOwn(claims, 'iss') && (typeof issuer === 'string' ? [issuer] : issuer).includes(claims.iss as string))) return false;
  if (subject !== undefined && !(Object.hasOwn(claims, 'sub') && claims.sub === subject)) return false;
  const { iat, nbf, exp } = claims;
  if (nbf !== undefined && !(typeof nbf === 'number' && nbf <= now + clockTolerance)) return false;
  if (exp !== undefined && !(typeof exp === 'number' && exp > now - clockTolerance)) return false;
  if (maxTokenAge === undefined) return iat === undefined || typeof iat === 'number';
  if (!Object.hasOwn(claims, 'iat') || typeof iat !== 'number') return false;
  const age = now - iat;
  return age - clockTolerance <= maxTokenAge && age >= -clockTolerance;
}

/** The header jose's UnsecuredJWT.decode takes: the one public way into jose's own JWT claims checks, given a payload verified here. */
const UNSECURED_HEADER = base64url.encode(JSON.stringify({ alg: 'none' }));

/**
 * jose's `jwtVerify` for a compact JWT, step for step, with the signature checked by synchronous
 * node:crypto on a KeyObject taken once per key instead of an asynchronous WebCrypto job. Key
 * selection stays jose's (the `keys` function, from createLocalJWKSet); the header checks and the
 * claims checks are jose's, restated, each segment decoded once by Buffer where it decodes as jose
 * would, and every token the restated claims checks do not accept goes through jose's own
 * (validateClaimsSet, by UnsecuredJWT.decode) for its verdict and error:
 * test/node/node-jwt-crypto.test.ts holds every outcome, result or error, to jose's own.
 */
async function verifyJwt(token: string, keys: Parameters<JwtCrypto['verify']>[1], options: JwtVerifyOptions): Promise<VerifiedJwt> {
  if (typeof token !== 'string') throw new errors.JWSInvalid('Compact JWS must be a string or Uint8Array');
  const { 0: encodedHeader = '', 1: encodedPayload = '', 2: encodedSignature = '', length } = token.split('.');
  if (length !== 3) throw new errors.JWSInvalid('Invalid Compact JWS');
  const protectedHeader = parseProtectedHeader(encodedHeader);
  const b64 = base64urlPayload(protectedHeader);
  const { alg } = protectedHeader;
  if (typeof alg !== 'string' || !alg) throw new errors.JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  if (options.algorithms !== undefined && !options.algorithms.includes(alg))
    throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  // An unencoded payload is signed as it stands, so jose refuses one that is not ASCII before it looks for a key.
  if (!b64 && NON_ASCII.test(encodedPayload)) throw new errors.JWSInvalid('JWS Compact Serialization payload must use only ASCII characters');
  const key = await keys(protectedHeader, { payload: encodedPayload, protected: encodedHeader, signature: encodedSignature });
  const algorithm = algorithmOf(alg);
  if (NON_ASCII.test(encodedPayload)) throw new errors.JWSInvalid('The payload is not a valid base64url string');
  const signature = decodeBase64url(encodedSignature, 'signature');
  checkVerificationKey(key, alg, algorithm);
  let verified: boolean;
  try {
    verified = verify(
      algorithm.digest,
      Buffer.from(`${encodedHeader}.${encodedPayload}`, 'latin1'),
      { key: keyObjectOf(key), ...algorithm.options },
      signature,
    );
  } catch (cause) {
    throw new errors.JWSSignatureVerificationFailed(undefined, { cause });
  }
  if (!verified) throw new errors.JWSSignatureVerificationFailed();
  if (!b64) throw new errors.JWTInvalid('JWTs MUST NOT use unencoded payload');
  const claims = parseCanonicalSegment(encodedPayload);
  if (isPlainObject(claims) && claimsAccepted(claims, options)) return { payload: claims, protectedHeader };
  // Anything else, jose's own decoding and claims checks accept or refuse, with jose's errors.
  decodeBase64url(encodedPayload, 'payload');
  const { payload } = UnsecuredJWT.decode(`${UNSECURED_HEADER}.${encodedPayload}.`, options);
  return { payload, protectedHeader };
}

/** The JwtCrypto of the Node broker: node:crypto, synchronous, on KeyObjects taken once per key. */
export const NODE_JWT_CRYPTO: JwtCrypto = {
  verify: verifyJwt,
  sign: async (header, payload, key) => {
    const algorithm = algorithmOf(header.alg);
    // Node's own base64url of the UTF-8 bytes, as jose's encoder writes them, in a quarter of its time.
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const signature = sign(algorithm.digest, Buffer.from(input, 'latin1'), { key: keyObjectOf(key.key), ...algorithm.options } as SignKeyObjectInput);
    return `${input}.${signature.toString('base64url')}`;
  },
  // About 5 µs for a CI token where the portable one takes about 24: the subject token is hashed on every exchange.
  sha256Hex: (text) => createHash('sha256').update(text).digest('hex'),
};

/** Node's own HMAC-SHA-256, for the audit records' MACs on the writer and check threads. */
export const NODE_HMAC_SHA256: HmacSha256 = (key, text) => createHmac('sha256', key).update(text).digest();
