import { constants, generateKeyPairSync, sign as nodeSign, type KeyObject, type webcrypto } from 'node:crypto';
import { base64url, createLocalJWKSet, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { NODE_JWT_CRYPTO } from '../../src/runtimes/node/node-jwt-crypto.ts';
import { JOSE_JWT_CRYPTO, type JwtVerifyOptions } from '../../src/core/mint/jwt-crypto.ts';

// The Node broker verifies subject tokens with NODE_JWT_CRYPTO, which restates jose's jwtVerify over node:crypto.
// Every token below goes through both, and must come out the same: the same claims and header, or the same error
// (class, message, and for claim errors the claim and reason). Each case also names the outcome it expects, so a
// mistake in the setup cannot make both fail alike unnoticed.

const ISSUER = 'https://ci.example.com';
const AUDIENCE = 'https://keyway.example.com';
const NOW = 1_800_000_000;

type Alg = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';
interface TestKey {
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}
const keys = new Map<string, TestKey>();

const GENERATE = {
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ES384: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ES512: () => generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  EdDSA: () => generateKeyPairSync('ed25519'),
};

function makeKey(kid: string, alg: Alg, options: { modulusLength?: number; jwk?: JWK } = {}): void {
  const pair = options.modulusLength === undefined ? GENERATE[alg]() : generateKeyPairSync('rsa', { modulusLength: options.modulusLength });
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, ...options.jwk };
  keys.set(kid, { privateKey: pair.privateKey, jwk });
}

const NODE_SIGNING: Record<string, { digest: string | null; options: object }> = {
  RS256: { digest: 'sha256', options: {} },
  PS256: { digest: 'sha256', options: { padding: 6, saltLength: 32 } },
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  ES384: { digest: 'sha384', options: { dsaEncoding: 'ieee-p1363' } },
  ES512: { digest: 'sha512', options: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { digest: 'sha256', options: {} },
};

const segment = (value: unknown): string => (typeof value === 'string' ? value : base64url.encode(JSON.stringify(value)));

/** A compact JWS with exactly these segments, signed by key `kid` as `signAs` (default: the header's alg). */
function craft(header: unknown, payload: unknown, kid: string, signAs?: string): string {
  const alg = signAs ?? (header as { alg: string }).alg;
  const scheme = NODE_SIGNING[alg];
  if (scheme === undefined) throw new Error(`cannot sign as ${alg}`);
  return signedBy(header, payload, kid, alg === 'EdDSA' ? null : scheme.digest, scheme.options);
}

/** A compact JWS with exactly these segments, signed by key `kid` with node:crypto's `digest` and `options`, whatever the header says. */
function signedBy(header: unknown, payload: unknown, kid: string, digest: string | null, options: object): string {
  const input = `${segment(header)}.${segment(payload)}`;
  const key = keys.get(kid)?.privateKey;
  if (key === undefined) throw new Error(`no key ${kid}`);
  return `${input}.${nodeSign(digest, Buffer.from(input, 'latin1'), { key, ...options }).toString('base64url')}`;
}

const claims = (overrides: Record<string, unknown> = {}) => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub: 'repo:acme/api',
  iat: NOW - 10,
  nbf: NOW - 10,
  exp: NOW + 300,
  ...overrides,
});
const OPTIONS: JwtVerifyOptions = {
  issuer: ISSUER,
  algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'],
  clockTolerance: 60,
  maxTokenAge: 3600,
  currentDate: new Date(NOW * 1000),
  requiredClaims: ['sub', 'iat', 'exp'],
};

/** One token's fate: its claims and header, or its error's identity. */
async function outcome(run: () => Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    return { result: await run() };
  } catch (error) {
    const { name, message, claim, reason } = error as Error & { claim?: string; reason?: string };
    return { error: (error as Error).constructor.name, name, message, claim, reason };
  }
}

let jwks: JWTVerifyGetKey;
let flipped: (token: string) => string;

beforeAll(() => {
  makeKey('rsa', 'RS256');
  makeKey('rsa-2', 'RS256');
  makeKey('pss', 'PS256', { jwk: { alg: 'PS256' } });
  makeKey('p256', 'ES256');
  makeKey('p384', 'ES384');
  makeKey('p521', 'ES512');
  makeKey('ed', 'EdDSA');
  makeKey('rsa-1024', 'RS256', { modulusLength: 1024 });
  makeKey('p256-enc', 'ES256', { jwk: { use: 'enc' } });
  makeKey('p256-sign-only', 'ES256', { jwk: { key_ops: ['sign'] } });
  jwks = createLocalJWKSet({ keys: [...keys.values()].map((key) => key.jwk) });
  flipped = (token) => {
    const [header, payload, signature = ''] = token.split('.');
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    return `${header}.${payload}.${bytes.toString('base64url')}`;
  };
});

const rs256 = (header: Record<string, unknown> = {}, payload: unknown = claims()) => craft({ alg: 'RS256', kid: 'rsa', ...header }, payload, 'rsa', 'RS256');

type Case = [title: string, token: () => string, expected: string, options?: Partial<JwtVerifyOptions>];
/** No claim checked: every option that makes jose check one, unset. */
const NO_CLAIMS_OPTIONS: Partial<JwtVerifyOptions> = {
  issuer: undefined,
  maxTokenAge: undefined,
  currentDate: undefined,
  requiredClaims: undefined,
};
const P1363 = { dsaEncoding: 'ieee-p1363' };
const pssSalt = (bytes: number) => ({ padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bytes });
const CASES: Case[] = [
  ['RS256', () => rs256(), 'ok'],
  ['PS256', () => craft({ alg: 'PS256', kid: 'pss' }, claims(), 'pss'), 'ok'],
  ['ES256', () => craft({ alg: 'ES256', kid: 'p256' }, claims(), 'p256'), 'ok'],
  ['ES384', () => craft({ alg: 'ES384', kid: 'p384' }, claims(), 'p384'), 'ok'],
  ['ES512', () => craft({ alg: 'ES512', kid: 'p521' }, claims(), 'p521'), 'ok'],
  ['EdDSA', () => craft({ alg: 'EdDSA', kid: 'ed' }, claims(), 'ed'), 'ok'],
  ['typ and unknown header parameters', () => rs256({ typ: 'JWT', x: [1, { y: null }] }), 'ok'],
  ['an algorithm the allowlist lacks', () => rs256(), 'JOSEAlgNotAllowed', { algorithms: ['ES256'] }],
  ['alg none', () => `${segment({ alg: 'none' })}.${segment(claims())}.`, 'JOSEAlgNotAllowed'],
  ['HS256 under an RSA kid', () => `${segment({ alg: 'HS256', kid: 'rsa' })}.${segment(claims())}.c2ln`, 'JOSEAlgNotAllowed'],
  ['no alg', () => craft({ kid: 'rsa' }, claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  ['an empty alg', () => rs256({ alg: '' }), 'JWSInvalid'],
  ['alg of the wrong type', () => rs256({ alg: ['RS256'] }), 'JWSInvalid'],
  ['a header that is not base64url', () => `*${rs256()}`, 'JWSInvalid'],
  ['a header that is a JSON array', () => craft(segment(['RS256']), claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  ['a header that is not UTF-8', () => craft(Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url'), claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  ['crit that is not an array', () => rs256({ crit: 'exp' }), 'JWSInvalid'],
  ['an empty crit', () => rs256({ crit: [] }), 'JWSInvalid'],
  ['crit with an empty name', () => rs256({ crit: [''] }), 'JWSInvalid'],
  ['crit naming an unknown extension', () => rs256({ crit: ['exp'], exp: 1 }), 'JOSENotSupported'],
  ['crit naming b64 without it', () => rs256({ crit: ['b64'] }), 'JWSInvalid'],
  ['crit b64 that is not a boolean', () => rs256({ crit: ['b64'], b64: 'false' }), 'JWSInvalid'],
  ['crit b64 false, well signed', () => rs256({ crit: ['b64'], b64: false }), 'JWTInvalid'],
  ['crit b64 false, badly signed', () => flipped(rs256({ crit: ['b64'], b64: false })), 'JWSSignatureVerificationFailed'],
  ['crit b64 true', () => rs256({ crit: ['b64'], b64: true }), 'ok'],
  ['b64 false without crit', () => rs256({ b64: false }), 'ok'],
  ['two segments', () => rs256().split('.').slice(0, 2).join('.'), 'JWSInvalid'],
  ['four segments', () => `${rs256()}.x`, 'JWSInvalid'],
  ['a payload that is not ASCII', () => craft({ alg: 'RS256', kid: 'rsa' }, `${segment(claims())}é`, 'rsa'), 'JWSInvalid'],
  ['a payload that is not base64url', () => craft({ alg: 'RS256', kid: 'rsa' }, `${segment(claims())}*`, 'rsa'), 'JWSInvalid'],
  ['a signature that is not base64url', () => `${rs256().split('.').slice(0, 2).join('.')}.***`, 'JWSInvalid'],
  ['flipped signature bits', () => flipped(rs256()), 'JWSSignatureVerificationFailed'],
  ['an ES256 signature cut short', () => craft({ alg: 'ES256', kid: 'p256' }, claims(), 'p256').slice(0, -4), 'JWSSignatureVerificationFailed'],
  ['an empty signature', () => `${rs256().split('.').slice(0, 2).join('.')}.`, 'JWSSignatureVerificationFailed'],
  [
    'a signature moved onto another payload',
    () => `${rs256().split('.')[0]}.${segment(claims({ sub: 'x' }))}.${rs256().split('.')[2]}`,
    'JWSSignatureVerificationFailed',
  ],
  ['a foreign key under a published kid', () => craft({ alg: 'RS256', kid: 'rsa' }, claims(), 'rsa-2'), 'JWSSignatureVerificationFailed'],
  ['an unknown kid', () => rs256({ kid: 'nope' }), 'JWKSNoMatchingKey'],
  ['no kid among several RSA keys', () => craft({ alg: 'RS256' }, claims(), 'rsa'), 'JWKSMultipleMatchingKeys'],
  ['an EC kid for RS256', () => rs256({ kid: 'p256' }), 'JWKSNoMatchingKey'],
  ['a P-384 kid for ES256', () => craft({ alg: 'ES256', kid: 'p384' }, claims(), 'p256'), 'JWKSNoMatchingKey'],
  ['a key whose own alg differs', () => craft({ alg: 'RS256', kid: 'pss' }, claims(), 'pss'), 'JWKSNoMatchingKey'],
  ['an RSA key under 2048 bits', () => craft({ alg: 'RS256', kid: 'rsa-1024' }, claims(), 'rsa-1024'), 'TypeError'],
  ['a payload that is not JSON', () => rs256({}, base64url.encode('not json')), 'JWTInvalid'],
  ['a payload that is a JSON array', () => rs256({}, [claims()]), 'JWTInvalid'],
  ['an empty payload', () => rs256({}, ''), 'JWTInvalid'],
  ['a payload that is not UTF-8', () => rs256({}, Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')), 'JWTInvalid'],
  ['expired', () => rs256({}, claims({ exp: NOW - 61 })), 'JWTExpired'],
  ['expired within the clock tolerance', () => rs256({}, claims({ exp: NOW - 59 })), 'ok'],
  ['exp that is not a number', () => rs256({}, claims({ exp: String(NOW + 300) })), 'JWTClaimValidationFailed'],
  ['not yet valid', () => rs256({}, claims({ nbf: NOW + 61 })), 'JWTClaimValidationFailed'],
  ['issued in the future', () => rs256({}, claims({ iat: NOW + 61 })), 'JWTClaimValidationFailed'],
  ['issued too long ago', () => rs256({}, claims({ iat: NOW - 3661 })), 'JWTExpired'],
  ['no iat', () => rs256({}, claims({ iat: undefined })), 'JWTClaimValidationFailed'],
  ['no sub', () => rs256({}, claims({ sub: undefined })), 'JWTClaimValidationFailed'],
  ['another issuer', () => rs256({}, claims({ iss: 'https://evil.example.com' })), 'JWTClaimValidationFailed'],
  // Segments Buffer would decode otherwise than jose: jose's decoder judges them.
  ['a header behind a byte order mark', () => craft(withBom({ alg: 'RS256', kid: 'rsa' }), claims(), 'rsa', 'RS256'), 'ok'],
  ['a payload behind a byte order mark', () => rs256({}, withBom(claims())), 'ok'],
  ['a header with a byte in a string that is not UTF-8', () => craft(notUtf8InString({ alg: 'RS256', kid: 'rsa' }), claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  ['a payload with a byte in a string that is not UTF-8', () => rs256({}, notUtf8InString(claims())), 'JWTInvalid'],
  ['a payload with padding', () => rs256({}, padded(segment(claims()))), 'ok'],
  ['a payload with padding in the middle', () => rs256({}, `${segment(claims()).slice(0, 8)}=${segment(claims()).slice(8)}`), 'JWSInvalid'],
  ['a payload with a space in it', () => rs256({}, `${segment(claims()).slice(0, 8)} ${segment(claims()).slice(8)}`), 'ok'],
  ['a payload one character too long', () => rs256({}, `${unpaddedLength(segment(claims({ x: 'ab' })), 0)}A`), 'JWSInvalid'],
  ['a payload in base64 rather than base64url', () => rs256({}, Buffer.from(JSON.stringify(claims({ x: '~~~?' }))).toString('base64')), 'JWSInvalid'],
  ['a payload whose last character carries stray bits', () => rs256({}, strayBits(segment(claims({ x: 'a' })))), 'ok'],
  ['a header whose last character carries stray bits', () => craft(strayBits(segment({ alg: 'RS256', kid: 'rsa', x: 12 })), claims(), 'rsa', 'RS256'), 'ok'],
  ['a signature with padding', () => padded(rs256()), 'JWSInvalid'],
  ['a signature whose last character carries stray bits', () => strayBits(rs256()), 'ok'],
  ['a payload of UTF-8 text', () => rs256({}, claims({ x: 'é ẞ 🔑 \ud800', y: { '': [1.5e300, -0, null] } })), 'ok'],
  ['a payload with a __proto__ member', () => rs256({}, base64url.encode(`{"__proto__":{"iss":"x"},${JSON.stringify(claims()).slice(1)}`)), 'ok'],
  ['a payload with a repeated member', () => rs256({}, base64url.encode(`{"exp":1,${JSON.stringify(claims()).slice(1)}`)), 'ok'],
  // The claims checks at their edges, and options the exchange does not pass.
  ['exp at the edge of the clock tolerance', () => rs256({}, claims({ exp: NOW - 60 })), 'JWTExpired'],
  ['an infinite exp', () => rs256({}, base64url.encode(JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":1e999'))), 'ok'],
  ['a null exp', () => rs256({}, claims({ exp: null })), 'JWTClaimValidationFailed'],
  ['nbf at the edge of the clock tolerance', () => rs256({}, claims({ nbf: NOW + 60 })), 'ok'],
  ['nbf that is not a number', () => rs256({}, claims({ nbf: String(NOW) })), 'JWTClaimValidationFailed'],
  ['iat at the edge of the maximum age', () => rs256({}, claims({ iat: NOW - 3660 })), 'ok'],
  ['iat at the edge of the future', () => rs256({}, claims({ iat: NOW + 60 })), 'ok'],
  ['iat that is not a number, no maximum age', () => rs256({}, claims({ iat: 'x' })), 'JWTClaimValidationFailed', { maxTokenAge: undefined }],
  ['no iat, no maximum age, not required', () => rs256({}, claims({ iat: undefined })), 'ok', { maxTokenAge: undefined, requiredClaims: [] }],
  ['no exp', () => rs256({}, claims({ exp: undefined })), 'JWTClaimValidationFailed'],
  ['an issuer among several accepted', () => rs256(), 'ok', { issuer: ['https://x.example.com', ISSUER] }],
  ['an issuer that is not a string', () => rs256({}, claims({ iss: [ISSUER] })), 'JWTClaimValidationFailed'],
  ['the expected subject', () => rs256(), 'ok', { subject: 'repo:acme/api' }],
  ['another subject', () => rs256(), 'JWTClaimValidationFailed', { subject: 'repo:acme/web' }],
  ['durations in words', () => rs256({}, claims({ iat: NOW - 3500 })), 'JWTExpired', { clockTolerance: '1 min', maxTokenAge: '30 min' }],
  ['a negative clock tolerance', () => rs256(), 'TypeError', { clockTolerance: -1 }],
  ['a required claim missing', () => rs256(), 'JWTClaimValidationFailed', { requiredClaims: ['sub', 'jti'] }],
  // The other RSA algorithms, and signatures made otherwise than the header says: another padding, salt, digest or encoding.
  ['RS384', () => signedBy({ alg: 'RS384', kid: 'rsa' }, claims(), 'rsa', 'sha384', {}), 'ok', { algorithms: ['RS384'] }],
  ['RS512', () => signedBy({ alg: 'RS512', kid: 'rsa' }, claims(), 'rsa', 'sha512', {}), 'ok', { algorithms: ['RS512'] }],
  ['PS384 by a key that names no alg', () => signedBy({ alg: 'PS384', kid: 'rsa' }, claims(), 'rsa', 'sha384', pssSalt(48)), 'ok', { algorithms: ['PS384'] }],
  ['PS512', () => signedBy({ alg: 'PS512', kid: 'rsa' }, claims(), 'rsa', 'sha512', pssSalt(64)), 'ok', { algorithms: ['PS512'] }],
  [
    'an RS384 header over a SHA-256 signature',
    () => signedBy({ alg: 'RS384', kid: 'rsa' }, claims(), 'rsa', 'sha256', {}),
    'JWSSignatureVerificationFailed',
    { algorithms: ['RS384'] },
  ],
  [
    'an RS256 header over a PSS signature',
    () => signedBy({ alg: 'RS256', kid: 'rsa' }, claims(), 'rsa', 'sha256', pssSalt(32)),
    'JWSSignatureVerificationFailed',
  ],
  [
    'a PS256 header over a PKCS #1 v1.5 signature',
    () => signedBy({ alg: 'PS256', kid: 'pss' }, claims(), 'pss', 'sha256', {}),
    'JWSSignatureVerificationFailed',
  ],
  ['a PS256 signature with no salt', () => signedBy({ alg: 'PS256', kid: 'pss' }, claims(), 'pss', 'sha256', pssSalt(0)), 'JWSSignatureVerificationFailed'],
  [
    'a PS512 signature with a 32-byte salt',
    () => signedBy({ alg: 'PS512', kid: 'rsa' }, claims(), 'rsa', 'sha512', pssSalt(32)),
    'JWSSignatureVerificationFailed',
    { algorithms: ['PS512'] },
  ],
  ['a PS256 key under 2048 bits', () => signedBy({ alg: 'PS256', kid: 'rsa-1024' }, claims(), 'rsa-1024', 'sha256', pssSalt(32)), 'TypeError'],
  ['an RSA signature behind a zero byte', () => withSignature(rs256(), (bytes) => Buffer.concat([Buffer.from([0]), bytes])), 'JWSSignatureVerificationFailed'],
  [
    'an ES256 signature in DER',
    () => signedBy({ alg: 'ES256', kid: 'p256' }, claims(), 'p256', 'sha256', { dsaEncoding: 'der' }),
    'JWSSignatureVerificationFailed',
  ],
  ['an ES256 header over a SHA-384 digest', () => signedBy({ alg: 'ES256', kid: 'p256' }, claims(), 'p256', 'sha384', P1363), 'JWSSignatureVerificationFailed'],
  ['an ES512 header over a SHA-384 digest', () => signedBy({ alg: 'ES512', kid: 'p521' }, claims(), 'p521', 'sha384', P1363), 'JWSSignatureVerificationFailed'],
  [
    'an ES256 signature with a byte appended',
    () => withSignature(craft({ alg: 'ES256', kid: 'p256' }, claims(), 'p256'), (bytes) => Buffer.concat([bytes, Buffer.from([0])])),
    'JWSSignatureVerificationFailed',
  ],
  [
    'an ES256 signature of zeros',
    () => withSignature(craft({ alg: 'ES256', kid: 'p256' }, claims(), 'p256'), () => Buffer.alloc(64)),
    'JWSSignatureVerificationFailed',
  ],
  ['an ES256 signature as its (r, n − s) twin', () => withSignature(craft({ alg: 'ES256', kid: 'p256' }, claims(), 'p256'), highS), 'ok'],
  ['Ed25519 as the alg', () => craft({ alg: 'Ed25519', kid: 'ed' }, claims(), 'ed', 'EdDSA'), 'ok', { algorithms: ['Ed25519'] }],
  // Headers and keys at the edges of the algorithm and key checks.
  ['alg in lower case', () => rs256({ alg: 'rs256' }), 'JOSEAlgNotAllowed'],
  [
    'HS256, allowed, under an RSA kid',
    () => `${segment({ alg: 'HS256', kid: 'rsa' })}.${segment(claims())}.c2ln`,
    'JOSENotSupported',
    { algorithms: ['HS256'] },
  ],
  [
    'ML-DSA-44, allowed, with no key of its type',
    () => `${segment({ alg: 'ML-DSA-44' })}.${segment(claims())}.c2ln`,
    'JWKSNoMatchingKey',
    { algorithms: ['ML-DSA-44'] },
  ],
  ['alg naming a member of every object, no allowlist', () => rs256({ alg: 'constructor' }), 'JOSENotSupported', { algorithms: undefined }],
  ['alg twice, the last allowed', () => craft(base64url.encode('{"alg":"none","alg":"RS256","kid":"rsa"}'), claims(), 'rsa', 'RS256'), 'ok'],
  [
    'alg twice, the last not allowed',
    () => craft(base64url.encode('{"alg":"RS256","alg":"HS256","kid":"rsa"}'), claims(), 'rsa', 'RS256'),
    'JOSEAlgNotAllowed',
  ],
  ['alg only under __proto__', () => craft(base64url.encode('{"__proto__":{"alg":"RS256"},"kid":"rsa"}'), claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  ['a kid that is a number', () => rs256({ kid: 1 }), 'JWKSNoMatchingKey'],
  ['no kid, one usable key of the type', () => craft({ alg: 'ES256' }, claims(), 'p256'), 'ok'],
  ['a key whose use is enc', () => craft({ alg: 'ES256', kid: 'p256-enc' }, claims(), 'p256-enc'), 'JWKSNoMatchingKey'],
  ['a key whose key_ops lack verify', () => craft({ alg: 'ES256', kid: 'p256-sign-only' }, claims(), 'p256-sign-only'), 'JWKSNoMatchingKey'],
  ['crit naming b64 twice', () => rs256({ crit: ['b64', 'b64'], b64: true }), 'ok'],
  ['crit naming __proto__', () => rs256({ crit: ['__proto__'] }), 'JOSENotSupported'],
  ['a null crit', () => rs256({ crit: null }), 'JWSInvalid'],
  ['crit b64 false, a payload that is not ASCII', () => craft({ alg: 'RS256', kid: 'rsa', crit: ['b64'], b64: false }, '{é}', 'rsa'), 'JWSInvalid'],
  [
    'crit b64 false, a payload that is not ASCII, an unknown kid',
    () => `${segment({ alg: 'RS256', kid: 'nope', crit: ['b64'], b64: false })}.{é}.c2ln`,
    'JWSInvalid',
  ],
  ['a header of JSON with whitespace', () => craft(base64url.encode(' { "alg" : "RS256" , "kid":"rsa" } \n'), claims(), 'rsa', 'RS256'), 'ok'],
  ['a header with padding', () => craft(padded(segment({ alg: 'RS256', kid: 'rsa' })), claims(), 'rsa', 'RS256'), 'ok'],
  [
    'a header in base64 rather than base64url',
    () => craft(unpadded(Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'rsa', x: '~~~?>>' })).toString('base64')), claims(), 'rsa', 'RS256'),
    'JWSInvalid',
  ],
  ['a header of JSON null', () => craft(base64url.encode('null'), claims(), 'rsa', 'RS256'), 'JWSInvalid'],
  // Payloads whose JSON a lenient reader could take otherwise.
  [
    'iss twice, the last untrusted',
    () => rs256({}, base64url.encode(`${JSON.stringify(claims()).slice(0, -1)},"iss":"https://evil.example.com"}`)),
    'JWTClaimValidationFailed',
  ],
  ['iss twice, the last trusted', () => rs256({}, base64url.encode(`{"iss":"https://evil.example.com",${JSON.stringify(claims()).slice(1)}`)), 'ok'],
  ['a payload of JSON with whitespace', () => rs256({}, base64url.encode(` \n${JSON.stringify(claims(), null, 2)}\t `)), 'ok'],
  [
    'a payload behind two byte order marks',
    () => rs256({}, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(withBom(claims()), 'base64url')]).toString('base64url')),
    'JWTInvalid',
  ],
  ['a payload of JSON null', () => rs256({}, base64url.encode('null')), 'JWTInvalid'],
  [
    'a payload in base64 rather than base64url',
    () => rs256({}, unpadded(Buffer.from(JSON.stringify(claims({ x: '~~~?>>' }))).toString('base64'))),
    'JWSInvalid',
  ],
  ['a payload that is a JSON array, no claims checked', () => rs256({}, [claims()]), 'JWTInvalid', NO_CLAIMS_OPTIONS],
  // Times as fractions, at the limits of a double, and of other types.
  ['a fractional exp inside the clock tolerance', () => rs256({}, claims({ exp: NOW - 59.5 })), 'ok'],
  ['a fractional exp past the clock tolerance', () => rs256({}, claims({ exp: NOW - 60.5 })), 'JWTExpired'],
  ['exp of 1e308', () => rs256({}, claims({ exp: 1e308 })), 'ok'],
  ['exp of minus infinity', () => rs256({}, withNumber(claims(), 'exp', '-1e999')), 'JWTExpired'],
  ['exp that is a boolean', () => rs256({}, claims({ exp: true })), 'JWTClaimValidationFailed'],
  ['a fractional nbf past the clock tolerance', () => rs256({}, claims({ nbf: NOW + 60.5 })), 'JWTClaimValidationFailed'],
  ['nbf of infinity', () => rs256({}, withNumber(claims(), 'nbf', '1e999')), 'JWTClaimValidationFailed'],
  ['a null nbf', () => rs256({}, claims({ nbf: null })), 'JWTClaimValidationFailed'],
  ['a fractional iat past the maximum age', () => rs256({}, claims({ iat: NOW - 3660.5 })), 'JWTExpired'],
  ['iat of minus infinity', () => rs256({}, withNumber(claims(), 'iat', '-1e999')), 'JWTExpired'],
  ['iat of infinity', () => rs256({}, withNumber(claims(), 'iat', '1e999')), 'JWTClaimValidationFailed'],
  ['iat that is a string', () => rs256({}, claims({ iat: String(NOW) })), 'JWTClaimValidationFailed'],
  // The issuer compared exactly (the audience is keyway's own check: verify-subject-token.test.ts).
  ['an issuer with a trailing slash', () => rs256({}, claims({ iss: `${ISSUER}/` })), 'JWTClaimValidationFailed'],
  ['an issuer in upper case', () => rs256({}, claims({ iss: ISSUER.toUpperCase() })), 'JWTClaimValidationFailed'],
  ['a required claim every object has', () => rs256(), 'JWTClaimValidationFailed', { requiredClaims: ['toString'] }],
  // Options out of range, which jose refuses whatever the token.
  ['an infinite clock tolerance', () => rs256(), 'TypeError', { clockTolerance: Number.POSITIVE_INFINITY }],
  ['a clock tolerance that is not a number', () => rs256(), 'TypeError', { clockTolerance: Number.NaN }],
  ['a maximum age of zero', () => rs256({}, claims({ iat: NOW })), 'ok', { maxTokenAge: 0, clockTolerance: 0 }],
  ['a negative maximum age', () => rs256(), 'TypeError', { maxTokenAge: -1 }],
  ['an invalid current date', () => rs256(), 'TypeError', { currentDate: new Date(Number.NaN) }],
  ['an invalid current date, a token without times', () => rs256({}, { sub: 'x' }), 'TypeError', { ...NO_CLAIMS_OPTIONS, currentDate: new Date(Number.NaN) }],
  ['a current date within a second', () => rs256({}, claims({ exp: NOW })), 'ok', { currentDate: new Date(NOW * 1000 - 1), clockTolerance: 0 }],
];

/** A compact JWS whose signature bytes `change` made otherwise. */
function withSignature(token: string, change: (signature: Buffer) => Buffer): string {
  const [header, payload, signature = ''] = token.split('.');
  return `${header}.${payload}.${change(Buffer.from(signature, 'base64url')).toString('base64url')}`;
}

const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
/** An ES256 signature (r, s) as (r, n − s), which verifies as well. */
function highS(signature: Buffer): Buffer {
  const s = BigInt(`0x${signature.subarray(32).toString('hex')}`);
  return Buffer.concat([signature.subarray(0, 32), Buffer.from((P256_ORDER - s).toString(16).padStart(64, '0'), 'hex')]);
}

/** A payload segment of `value`'s JSON with `claim`'s number written as `literal` (1e999: what JSON.parse reads as infinity). */
function withNumber(value: Record<string, unknown>, claim: string, literal: string): string {
  return base64url.encode(JSON.stringify({ ...value, [claim]: 0 }).replace(`"${claim}":0`, `"${claim}":${literal}`));
}

/** Base64 text without its padding. */
function unpadded(text: string): string {
  return text.replace(/=+$/, '');
}

/** A segment of `value`'s JSON behind a UTF-8 byte order mark, which jose's TextDecoder drops. */
function withBom(value: unknown): string {
  return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(value))]).toString('base64url');
}

/** A segment of `value`'s JSON with a member whose string holds a byte that is not UTF-8 (which Buffer would read as U+FFFD). */
function notUtf8InString(value: object): string {
  const json = Buffer.from(JSON.stringify({ ...value, x: '#' }));
  json[json.lastIndexOf('#')] = 0xff;
  return json.toString('base64url');
}

/** A compact JWS or segment with base64 padding on its last segment. */
function padded(text: string): string {
  return `${text}${'='.repeat((4 - (text.length % 4)) % 4)}`;
}

/** `segment` cut to a whole number of base64 quanta plus `extra` characters. */
function unpaddedLength(segment: string, extra: number): string {
  return segment.slice(0, segment.length - (segment.length % 4) + extra);
}

/** A compact JWS or segment whose last character has a bit set beyond its bytes (which both decoders drop), where it has such bits. */
function strayBits(text: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = text.at(-1) ?? '';
  const spare = text.length % 4 === 2 ? 0b1111 : text.length % 4 === 3 ? 0b11 : 0;
  if (spare === 0) throw new Error('no stray bits to set: the length is a whole number of bytes');
  return `${text.slice(0, -1)}${alphabet[alphabet.indexOf(last) | 1]}`;
}

describe('NODE_JWT_CRYPTO verifies exactly as jose does', () => {
  it.each(CASES)('%s', async (...[, token, expected, options]: Case) => {
    const jwt = token();
    const settings = { ...OPTIONS, ...options };
    const jose = await outcome(() => JOSE_JWT_CRYPTO.verify(jwt, jwks, settings));
    const node = await outcome(() => NODE_JWT_CRYPTO.verify(jwt, jwks, settings));
    expect(jose.error ?? 'ok').toBe(expected);
    expect(node).toEqual(jose);
  });
});

// A JWKS only ever yields a key imported for the header's alg; a keys function may yield any. These hold the verifier's
// own key checks, which stand between a key and an algorithm it was not made for, to jose's.
type KeyCase = [title: string, token: () => string, key: () => Promise<CryptoKey>, expected: string, options?: Partial<JwtVerifyOptions>];
const RSASSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const KEY_CASES: KeyCase[] = [
  ['an RS256 key for RS256', () => rs256(), () => importPublic('rsa', RSASSA_SHA256), 'ok'],
  ['an RS256 key for PS256', () => signedBy({ alg: 'PS256' }, claims(), 'rsa', 'sha256', pssSalt(32)), () => importPublic('rsa', RSASSA_SHA256), 'TypeError'],
  ['an RS384 key for RS256', () => rs256(), () => importPublic('rsa', { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' }), 'TypeError'],
  [
    'a P-384 key for ES256',
    () => signedBy({ alg: 'ES256' }, claims(), 'p384', 'sha256', P1363),
    () => importPublic('p384', { name: 'ECDSA', namedCurve: 'P-384' }),
    'TypeError',
  ],
  ['a public key that may not verify', () => rs256(), () => importPublic('rsa', RSASSA_SHA256, []), 'TypeError'],
  [
    'an HMAC key for RS256',
    () => rs256(),
    () => crypto.subtle.importKey('raw', new Uint8Array(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']),
    'TypeError',
  ],
  [
    'alg naming a member of every object, no allowlist, a key for any alg',
    () => rs256({ alg: 'toString' }),
    () => importPublic('rsa', RSASSA_SHA256),
    'JOSENotSupported',
    { algorithms: undefined },
  ],
];

/** Test key `kid`'s public half, imported as `algorithm` for `usages`. */
function importPublic(
  kid: string,
  algorithm: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams,
  usages: webcrypto.KeyUsage[] = ['verify'],
): Promise<CryptoKey> {
  const { kty = '', n, e, crv, x, y } = keys.get(kid)?.jwk ?? {};
  return crypto.subtle.importKey('jwk', { kty, n, e, crv, x, y }, algorithm, true, usages);
}

describe('NODE_JWT_CRYPTO checks the key it is given as jose does', () => {
  it.each(KEY_CASES)('%s', async (...[, token, key, expected, options]: KeyCase) => {
    const jwt = token();
    const given = await key();
    const settings = { ...OPTIONS, ...options };
    const jose = await outcome(() => JOSE_JWT_CRYPTO.verify(jwt, async () => given, settings));
    const node = await outcome(() => NODE_JWT_CRYPTO.verify(jwt, async () => given, settings));
    expect(jose.error ?? 'ok').toBe(expected);
    expect(node).toEqual(jose);
  });
});

describe('NODE_JWT_CRYPTO signs as jose does', () => {
  it('writes the same header and payload segments, and a signature jose verifies', async () => {
    const pair = await generateKeyPair('ES256');
    const key = { kid: 'k1', alg: 'ES256' as const, key: pair.privateKey as CryptoKey };
    const header = { alg: 'ES256' as const, typ: 'at+jwt', kid: 'k1' };
    const payload = { scope: 'deploy:write', aud: ['a', 'b'], iat: NOW, nested: { ü: 'ẞ', n: 1.5, emoji: '🔑', lone: '\ud800' } };
    const [node, jose] = await Promise.all([NODE_JWT_CRYPTO.sign(header, payload, key), JOSE_JWT_CRYPTO.sign(header, payload, key)]);
    expect(node.split('.').slice(0, 2)).toEqual(jose.split('.').slice(0, 2));
    const publicKeys = createLocalJWKSet({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1' }] });
    const verified = await JOSE_JWT_CRYPTO.verify(node, publicKeys, { algorithms: ['ES256'] });
    expect(verified).toEqual({ payload, protectedHeader: header });
  });

  it('hashes as the portable sha256Hex does', () => {
    for (const text of ['', 'abc', `${'token '.repeat(200)}ünïcödé`, '\ud800 a lone surrogate']) {
      expect(NODE_JWT_CRYPTO.sha256Hex(text)).toBe(JOSE_JWT_CRYPTO.sha256Hex(text));
    }
  });
});
