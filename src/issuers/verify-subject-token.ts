import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import { ExchangeError } from '../exchange/reasons.ts';
import { IssuerUnavailableError, type JwksCache } from './jwks-cache.ts';
import type { ClaimType } from './presets.ts';
import type { TrustedIssuer } from './trusted-issuer.ts';

/** What the verifier needs to know about the issuers policies trust. */
export interface IssuerDirectory {
  issuer(url: string): TrustedIssuer | undefined;
  /** Every `aud` some policy of this issuer accepts (policies default to the broker's own URL). */
  acceptedAudiences(url: string): readonly string[];
}

export interface VerifiedSubjectToken {
  readonly issuer: TrustedIssuer;
  readonly header: ProtectedHeaderParameters;
  readonly claims: JWTPayload;
}

export interface VerifyOptions {
  readonly issuers: IssuerDirectory;
  readonly jwks: JwksCache;
  /** Milliseconds since the epoch. */
  readonly now: number;
  readonly clockToleranceSeconds: number;
}

/** Header parameters that point at keys. Following them lets the token choose its own verifier. */
const KEY_LOCATING_HEADERS = ['jku', 'x5u', 'x5c', 'jwk'] as const;
/** RFC 9068 access tokens are not identity proofs; RFC 8725 §3.12 keeps the two kinds apart. */
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt']);

/**
 * Verifies a CI OIDC token: its `iss` must be one a policy trusts, its signature must verify
 * with a key from that issuer's own JWKS under the issuer's algorithm allowlist, and its time,
 * audience, required claims and claim types must be right. Throws ExchangeError otherwise.
 */
export async function verifySubjectToken(token: string, options: VerifyOptions): Promise<VerifiedSubjectToken> {
  const { header, unverified } = decodeUnverified(token);

  for (const name of KEY_LOCATING_HEADERS) {
    if (name in header) throw new ExchangeError('header_forbidden', `header carries ${name}`);
  }
  if (typeof header.typ === 'string' && ACCESS_TOKEN_TYPES.has(header.typ.toLowerCase())) {
    throw new ExchangeError('claims_invalid', `header typ ${header.typ} marks an access token, not an identity token`);
  }

  const iss = unverified.iss;
  const issuer = typeof iss === 'string' ? options.issuers.issuer(iss) : undefined;
  if (issuer === undefined) throw new ExchangeError('issuer_untrusted', `iss ${JSON.stringify(iss)} is not trusted by any policy`);
  if (typeof header.alg !== 'string' || !issuer.preset.algorithms.includes(header.alg)) {
    throw new ExchangeError('algorithm_not_allowed', `alg ${JSON.stringify(header.alg)} is not allowed for ${issuer.url}`);
  }

  const claims = await verifyWithIssuerKeys(token, issuer, options);
  checkPresetClaims(claims, issuer);
  return { issuer, header, claims };
}

function decodeUnverified(token: string): { header: ProtectedHeaderParameters; unverified: JWTPayload } {
  try {
    return { header: decodeProtectedHeader(token), unverified: decodeJwt(token) };
  } catch (cause) {
    throw new ExchangeError('token_malformed', `not a JWT: ${(cause as Error).message}`, { public: true, cause });
  }
}

async function verifyWithIssuerKeys(token: string, issuer: TrustedIssuer, options: VerifyOptions): Promise<JWTPayload> {
  let keys: JWTVerifyGetKey;
  try {
    keys = await options.jwks.keysFor(issuer.url);
  } catch (cause) {
    if (cause instanceof IssuerUnavailableError) throw new ExchangeError('issuer_unavailable', cause.message, { cause });
    throw cause;
  }
  try {
    return await verifyWith(keys, token, issuer, options);
  } catch (error) {
    if (!(error instanceof errors.JWKSNoMatchingKey)) throw toExchangeError(error);
    // An unknown kid may mean the issuer rotated its keys; refetch (rate-limited) and try once more.
    const refreshed = await options.jwks.refreshForUnknownKey(issuer.url);
    if (refreshed === undefined) throw toExchangeError(error);
    try {
      return await verifyWith(refreshed, token, issuer, options);
    } catch (retryError) {
      throw toExchangeError(retryError);
    }
  }
}

async function verifyWith(keys: JWTVerifyGetKey, token: string, issuer: TrustedIssuer, options: VerifyOptions): Promise<JWTPayload> {
  const { payload } = await jwtVerify(token, keys, {
    issuer: issuer.url,
    audience: [...options.issuers.acceptedAudiences(issuer.url)],
    algorithms: [...issuer.preset.algorithms],
    clockTolerance: options.clockToleranceSeconds,
    maxTokenAge: issuer.preset.maxTokenAgeSeconds,
    currentDate: new Date(options.now),
    requiredClaims: ['sub', 'iat', 'exp'],
  });
  return payload;
}

function toExchangeError(error: unknown): ExchangeError {
  if (error instanceof ExchangeError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  const options = { cause: error };
  if (error instanceof errors.JWTExpired) {
    return new ExchangeError(error.claim === 'iat' ? 'token_too_old' : 'token_expired', detail, options);
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf':
      case 'iat':
        return new ExchangeError(error.reason === 'missing' ? 'claims_invalid' : 'token_not_yet_valid', detail, options);
      case 'aud':
        return new ExchangeError('audience_mismatch', detail, options);
      case 'iss':
        return new ExchangeError('issuer_untrusted', detail, options);
      default:
        return new ExchangeError('claims_invalid', detail, options);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new ExchangeError('algorithm_not_allowed', detail, options);
  if (
    error instanceof errors.JWSSignatureVerificationFailed ||
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported ||
    error instanceof errors.JWKInvalid
  ) {
    return new ExchangeError('signature_invalid', detail, options);
  }
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) {
    return new ExchangeError('token_malformed', detail, options);
  }
  throw error;
}

function typeOf(value: unknown): ClaimType | 'null' | 'other' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.every((element) => typeof element === 'string') ? 'string[]' : 'array';
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'object':
      return typeof value as ClaimType;
    default:
      return 'other';
  }
}

/**
 * The issuer preset's claim rules, after the signature and time checks (and, for explain and
 * policy tests, on claims taken as given): the claims that prove a CI job token are present,
 * and claims of a known type arrive with that type, so no array or object is coerced into a match.
 */
export function checkPresetClaims(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  for (const name of ['sub', ...issuer.preset.requiredClaims]) {
    if (!(name in claims)) throw new ExchangeError('claims_invalid', `missing required "${name}" claim`);
  }
  for (const [name, expected] of Object.entries(issuer.preset.claimTypes)) {
    if (!(name in claims)) continue;
    const actual = typeOf(claims[name]);
    const ok = actual === expected || (expected === 'array' && actual === 'string[]');
    if (!ok) throw new ExchangeError('claims_invalid', `claim ${name} is ${actual}, expected ${expected}`);
  }
}
