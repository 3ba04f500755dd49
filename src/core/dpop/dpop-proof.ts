import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { base64url, calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { KeywayError } from '../errors/keyway-error.ts';

/** RFC 9449 proofs keyway accepts: asymmetric algorithms only (never none or HMAC). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] as const;

export const DPOP_PROOF_LIMITS = {
  /** A proof is a header with a public key and five short claims; anything near this is not one. */
  bytes: 8 * 1024,
  jtiChars: 256,
  /** How long after its `iat` a proof is accepted; its `jti` is remembered that long. */
  maxAgeSeconds: 60,
  /** How far in the future `iat` may be (the job's clock running ahead of the broker's). */
  clockSkewSeconds: 5,
  /**
   * The largest RSA modulus taken (jose refuses under 2048). A signature check costs in proportion to the key's size, which
   * the sender picks: a 16384-bit key makes it about 30 times dearer, before the sender is known to be anyone.
   */
  rsaModulusBits: 4096,
} as const;

/**
 * The one RSA public exponent taken: every RSA library makes keys with it, and a check costs in proportion to the exponent's
 * length, which the sender picks: a 3072-bit exponent makes it about a hundred times dearer.
 */
const RSA_PUBLIC_EXPONENT = 'AQAB';

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** JWK members only a private or secret key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/**
 * The public members of each key type a proof may carry (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2): strings, as RFC 7517 requires,
 * and the ones RFC 7638 hashes into the thumbprint. WebCrypto would import a key whose members are other JSON (an array
 * reads as its one string), which the thumbprint then refuses: such a key is refused here, before either.
 */
const PUBLIC_MEMBERS: ReadonlyMap<string, readonly string[]> = new Map([
  ['EC', ['crv', 'x', 'y']],
  ['RSA', ['n', 'e']],
  ['OKP', ['crv', 'x']],
]);

export type DpopProofErrorCode = 'invalid_dpop_proof' | 'use_dpop_nonce';

/** RFC 9449 §12.2: `invalid_dpop_proof` (the proof is wrong) or `use_dpop_nonce` (send the server's nonce). */
export class DpopProofError extends KeywayError {
  override readonly name = 'DpopProofError';
  readonly code: DpopProofErrorCode;

  constructor(code: DpopProofErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** What the proof must match: this request, and for a resource request the access token it comes with. */
export interface DpopProofExpectation {
  readonly method: string;
  /** The request's URL as the client sees it; its query and fragment are ignored (RFC 9449 §4.3). */
  readonly url: string;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** At a resource server: the access token, whose hash the proof's `ath` must be. */
  readonly accessToken?: string;
  /** When the server hands out nonces: whether the proof's `nonce` is a current one. */
  readonly nonceIsCurrent?: (nonce: string) => boolean;
}

export interface VerifiedDpopProof {
  /** The RFC 7638 SHA-256 thumbprint of the proof's key: what `cnf.jkt` binds a token to. */
  readonly jkt: string;
  readonly jti: string;
  /**
   * Seconds since the epoch from which this proof is refused anyway, so its `jti` need not be remembered. Its age is checked
   * in whole seconds (jose's clock), so it is taken for the whole second its age limit falls in: this is the next one.
   */
  readonly acceptedUntil: number;
}

/**
 * Verifies a DPoP proof (RFC 9449 §4.3): one compact JWS, `typ` dpop+jwt, an allowed asymmetric
 * alg, signed by the public JWK in its own header; `htm` and `htu` of this request, a fresh `iat`,
 * a `jti`, `ath` when an access token comes with it, and the server's nonce when one is required.
 * Whether the `jti` was seen before is the caller's to check, through its replay store.
 */
export async function verifyDpopProof(proof: string, expected: DpopProofExpectation): Promise<VerifiedDpopProof> {
  if (proof.length > DPOP_PROOF_LIMITS.bytes) throw invalid('the DPoP proof is too large');
  if (!COMPACT_JWS.test(proof)) throw invalid('the DPoP header must hold exactly one compact JWS');
  let jwk: JWK;
  let payload: JWTPayload;
  let jkt: string;
  try {
    const header = decodeProtectedHeader(proof);
    if (typeof header.jwk !== 'object' || header.jwk === null) throw invalid('the DPoP proof header carries no jwk');
    jwk = header.jwk;
    const secret = PRIVATE_MEMBERS.filter((member) => member in jwk);
    if (secret.length > 0) throw invalid(`the DPoP proof's jwk carries private key material (${secret.join(', ')}); send the public key only`);
    checkPublicMembers(jwk);
    ({ payload } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: [...DPOP_ALGORITHMS],
      currentDate: new Date(expected.now),
      maxTokenAge: DPOP_PROOF_LIMITS.maxAgeSeconds,
      clockTolerance: DPOP_PROOF_LIMITS.clockSkewSeconds,
      requiredClaims: ['iat', 'jti', 'htm', 'htu'],
    }));
    jkt = await calculateJwkThumbprint(jwk, 'sha256');
  } catch (error) {
    if (error instanceof DpopProofError) throw error;
    // Everything above reads only the proof: whatever fails in it (jose's errors, the thumbprint's included, and WebCrypto's
    // DOMException for a jwk it will not import: a point off the curve, key_ops without verify) is the proof's fault, never the server's.
    throw invalid(`the DPoP proof is not valid: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  const { jti, htm, htu, iat, ath, nonce } = payload as JWTPayload & Record<'htm' | 'htu' | 'ath' | 'nonce', unknown>;
  if (typeof jti !== 'string' || jti === '' || jti.length > DPOP_PROOF_LIMITS.jtiChars) throw invalid('the DPoP proof jti must be a short string');
  if (htm !== expected.method) throw invalid(`the DPoP proof htm must be ${expected.method}`);
  if (typeof htu !== 'string' || !sameTarget(htu, expected.url)) throw invalid(`the DPoP proof htu must be ${withoutQuery(expected.url)}`);
  if (expected.accessToken !== undefined && ath !== accessTokenHash(expected.accessToken)) {
    throw invalid('the DPoP proof ath is not the hash of the access token it came with');
  }
  if (expected.nonceIsCurrent !== undefined && (typeof nonce !== 'string' || !expected.nonceIsCurrent(nonce))) {
    throw new DpopProofError('use_dpop_nonce', 'the DPoP proof must carry the nonce from the DPoP-Nonce header');
  }
  return {
    jkt,
    jti,
    acceptedUntil: Math.floor((iat as number) + DPOP_PROOF_LIMITS.maxAgeSeconds + DPOP_PROOF_LIMITS.clockSkewSeconds) + 1,
  };
}

/** What a replay store keeps for an accepted proof: its `jti` within its key, as lower-case hex SHA-256 (the shape replay keys have). */
export function dpopProofKey(proof: VerifiedDpopProof): string {
  return bytesToHex(sha256(utf8ToBytes(`dpop\n${proof.jkt}\n${proof.jti}`)));
}

/** RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token's ASCII. */
export function accessTokenHash(accessToken: string): string {
  return base64url.encode(sha256(utf8ToBytes(accessToken)));
}

/** The key thumbprint a token's `cnf` claims to bind it to (RFC 9449 §6: `cnf.jkt`), or undefined when it names none. */
export function boundKeyThumbprint(cnf: unknown): string | undefined {
  return typeof cnf === 'object' && cnf !== null && 'jkt' in cnf && typeof cnf.jkt === 'string' ? cnf.jkt : undefined;
}

function checkPublicMembers(jwk: JWK): void {
  if (typeof jwk.kty !== 'string' || jwk.kty === '') throw invalid("the DPoP proof's jwk must name its kty as a string");
  const members = PUBLIC_MEMBERS.get(jwk.kty) ?? [];
  const values: Readonly<Record<string, unknown>> = jwk;
  const wrong = members.filter((member) => typeof values[member] !== 'string' || values[member] === '');
  if (wrong.length > 0) throw invalid(`the DPoP proof's ${jwk.kty} jwk must carry ${wrong.join(', ')} as non-empty strings`);
  if (jwk.kty !== 'RSA') return;
  if (jwk.e !== RSA_PUBLIC_EXPONENT) throw invalid(`the DPoP proof's RSA jwk must have the public exponent 65537 (e ${RSA_PUBLIC_EXPONENT})`);
  const modulus = base64url.decode(jwk.n ?? '');
  const leadingZeros = modulus.findIndex((byte) => byte !== 0);
  if ((modulus.length - Math.max(leadingZeros, 0)) * 8 > DPOP_PROOF_LIMITS.rsaModulusBits) {
    throw invalid(`the DPoP proof's RSA jwk must have a modulus of at most ${DPOP_PROOF_LIMITS.rsaModulusBits} bits`);
  }
}

function invalid(message: string, cause?: unknown): DpopProofError {
  return new DpopProofError('invalid_dpop_proof', message, { cause });
}

/** The URL without query and fragment, normalized as the WHATWG parser does (scheme and host case, default port, dot segments). */
function withoutQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

function sameTarget(htu: string, url: string): boolean {
  return URL.canParse(htu) && withoutQuery(htu) === withoutQuery(url);
}
