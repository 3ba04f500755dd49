import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';
import { ExchangeError } from '../errors/exchange-error.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from '../mint/jwt-crypto.ts';
import { asciiLowerCase } from '../claims/case-fold.ts';
import { canonicalText, claimReader, isPresent } from '../claims/claim-value.ts';
import { IssuerUnavailableError, type JwksCache } from './jwks-cache.ts';
import type { ClaimType } from './issuer-preset.ts';
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
  /** How the signature and claims are checked: jose on WebCrypto unless the runtime has faster (Node: node:crypto). */
  readonly crypto?: JwtCrypto;
  /** The token's payload as jose's decodeJwt returned it, when the caller decoded it already (for the record); otherwise decoded here. */
  readonly decoded?: JWTPayload;
}

/** Header parameters that point at keys. Following them lets the token choose its own verifier. */
const KEY_LOCATING_HEADERS = ['jku', 'x5u', 'x5c', 'jwk'] as const;
/** RFC 9068 access tokens are not identity proofs; RFC 8725 §3.12 keeps the two kinds apart. */
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt']);

/**
 * Verifies a CI OIDC token: its `iss` must be one a policy trusts, its signature must verify
 * with a key from that issuer's own JWKS under the issuer's algorithm allowlist, and its time,
 * required claims and claim types must be right. Throws ExchangeError otherwise.
 *
 * Its audience is judged apart: a token that verifies in all else comes back, with the refusal its `aud` earns
 * (audience_mismatch) when no policy of its issuer accepts it, which the caller must throw where the policies decide. A
 * shared issuer (GitHub Actions, gitlab.com) mints a token for whatever audience a job names: refused here, as a token
 * that did not verify (no caller whose limits it spends), its answers would tell a stranger which audiences some
 * tenant's policies accept.
 */
export async function verifySubjectToken(
  token: string,
  options: VerifyOptions,
): Promise<{ readonly token: VerifiedSubjectToken; readonly audienceRefused: ExchangeError | undefined }> {
  const { header, unverified } = decodeUnverified(token, options.decoded);

  for (const name of KEY_LOCATING_HEADERS) {
    if (name in header) throw new ExchangeError('header_forbidden', `header carries ${name}`);
  }
  if (typeof header.typ === 'string' && ACCESS_TOKEN_TYPES.has(asciiLowerCase(header.typ))) {
    throw new ExchangeError('claims_invalid', `header typ ${header.typ} marks an access token, not an identity token`);
  }

  const iss = unverified.iss;
  const issuer = typeof iss === 'string' ? options.issuers.issuer(iss) : undefined;
  if (issuer === undefined) throw new ExchangeError('issuer_untrusted', `iss ${quoted(iss)} is not trusted by any policy`);
  if (typeof header.alg !== 'string' || !issuer.algorithms.includes(header.alg)) {
    throw new ExchangeError('algorithm_not_allowed', `alg ${quoted(header.alg)} is not allowed for ${issuer.url}`);
  }

  const claims = await verifyWithIssuerKeys(token, header, issuer, options);
  checkPresetClaims(claims, issuer);
  return { token: { issuer, header, claims }, audienceRefused: audienceRefusal(claims.aud, issuer, options.issuers) };
}

/**
 * audience_mismatch when `aud` names no audience a policy of `issuer` accepts: a string that is one, or an array that holds
 * one, as jose's `audience` check judges it (jose is never asked to, so that the refusal can wait for the policies).
 */
function audienceRefusal(aud: unknown, issuer: TrustedIssuer, issuers: IssuerDirectory): ExchangeError | undefined {
  const accepted = issuers.acceptedAudiences(issuer.url);
  const named = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (named.some((one) => accepted.includes(one))) return undefined;
  const written = aud === undefined ? 'missing' : named.length > 0 && named.every((one) => typeof one === 'string') ? JSON.stringify(aud) : quoted(aud);
  return new ExchangeError('audience_mismatch', `aud ${written} is not one a policy of ${issuer.url} accepts`);
}

/**
 * A value of an unverified token as a refusal's detail quotes it: a scalar as JSON, an array or object by its kind alone.
 * Anyone can send one nested thousands deep, which JSON.parse takes and JSON.stringify recurses into until the stack ends.
 */
function quoted(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(JSON.stringify(value));
  return Array.isArray(value) ? 'an array' : 'an object';
}

function decodeUnverified(token: string, decoded: JWTPayload | undefined): { header: ProtectedHeaderParameters; unverified: JWTPayload } {
  try {
    return { header: decodeProtectedHeader(token), unverified: decoded ?? decodeJwt(token) };
  } catch (cause) {
    throw new ExchangeError('token_malformed', `not a JWT: ${(cause as Error).message}`, { public: true, cause });
  }
}

async function verifyWithIssuerKeys(token: string, header: ProtectedHeaderParameters, issuer: TrustedIssuer, options: VerifyOptions): Promise<JWTPayload> {
  let keys: JWTVerifyGetKey;
  try {
    keys = await options.jwks.keysFor(issuer.url);
  } catch (cause) {
    if (cause instanceof IssuerUnavailableError) throw new ExchangeError('issuer_unavailable', cause.message, { cause });
    throw cause;
  }
  try {
    return await verifyWith(keys, token, header, issuer, options);
  } catch (error) {
    if (!(error instanceof errors.JWKSNoMatchingKey)) throw toExchangeError(error);
    // An unknown kid may mean the issuer rotated its keys; refetch (rate-limited) and try once more.
    const refreshed = await options.jwks.refreshForUnknownKey(issuer.url);
    if (refreshed === undefined) throw toExchangeError(error);
    try {
      return await verifyWith(refreshed, token, header, issuer, options);
    } catch (retryError) {
      throw toExchangeError(retryError);
    }
  }
}

/**
 * The token's claims once verified with `keys`. Where the issuer lists several keys under the token's `kid` (a rollover
 * that reused it, or a mistake), each of those is tried in turn, as jose offers (JWKSMultipleMatchingKeys is an
 * iterator over them), and the first whose signature verifies judges the rest: all are the issuer's own, and the JWKS
 * keeps at most MAX_KEYS_UNDER_ONE_KID of them (jwks-cache.ts). A token that names no kid matches every key of its type: trying each would let anyone
 * buy as many signature checks as the issuer has keys with one forged token, so it is refused as before.
 */
async function verifyWith(
  keys: JWTVerifyGetKey,
  token: string,
  header: ProtectedHeaderParameters,
  issuer: TrustedIssuer,
  options: VerifyOptions,
): Promise<JWTPayload> {
  const jwt = options.crypto ?? JOSE_JWT_CRYPTO;
  const checks = {
    issuer: issuer.url,
    algorithms: [...issuer.algorithms],
    clockTolerance: options.clockToleranceSeconds,
    maxTokenAge: issuer.maxTokenAgeSeconds,
    currentDate: new Date(options.now),
    requiredClaims: ['sub', 'iat', 'exp'],
  };
  try {
    return (await jwt.verify(token, keys, checks)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys) || typeof header.kid !== 'string') throw error;
    for await (const key of error) {
      try {
        return (await jwt.verify(token, async () => key, checks)).payload;
      } catch (keyError) {
        if (!(keyError instanceof errors.JWSSignatureVerificationFailed)) throw keyError;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
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
        // Only a time checked and found ahead is not yet valid; one missing or no number (`"nbf": "soon"`) is malformed, as such an `exp` is.
        return new ExchangeError(error.reason === 'check_failed' ? 'token_not_yet_valid' : 'claims_invalid', detail, options);
      case 'iss':
        return new ExchangeError('issuer_untrusted', detail, options);
      default:
        return new ExchangeError('claims_invalid', detail, options);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new ExchangeError('algorithm_not_allowed', detail, options);
  if (
    error instanceof errors.JWSSignatureVerificationFailed ||
    // Its issuer is known by now: a JWS that does not verify for want of form (`crit`, a signature not base64url) is
    // answered as one whose signature fails, as an untrusted issuer's would be, so the answer says nothing of trust.
    error instanceof errors.JWSInvalid ||
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported ||
    error instanceof errors.JWKInvalid
  ) {
    return new ExchangeError('signature_invalid', detail, options);
  }
  if (error instanceof errors.JWTInvalid) return new ExchangeError('token_malformed', detail, options);
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
 * policy tests, on claims taken as given, so the two can never disagree with the exchange):
 * its times are finite, the token does not outlive its issuer's lifetime cap, the claims that prove a CI job token
 * are present (nested ones by JSON Pointer), claims of a known type arrive with that type (no
 * array or object is coerced into a match) and in their documented form, and a per-tenant
 * issuer URL's tenant is the one the token names.
 */
export function checkPresetClaims(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  checkFiniteTimes(claims);
  checkLifetime(claims, issuer);
  checkRequiredClaims(claims, issuer);
  checkClaimTypes(claims, issuer);
  checkClaimFormats(claims, issuer);
  checkBoundClaims(claims, issuer);
}

/** JSON's `1e400` parses as Infinity, a number jose's time checks pass: an `exp` that never comes, an `nbf` long past. */
function checkFiniteTimes(claims: Readonly<Record<string, unknown>>): void {
  for (const key of ['exp', 'nbf', 'iat']) {
    const value = claims[key];
    if (typeof value === 'number' && !Number.isFinite(value)) throw new ExchangeError('claims_invalid', `claim ${key} is ${value}, not a time`);
  }
}

/** Some issuers can mint tokens that outlive what they identify (Kubernetes, a year); those are refused however fresh. */
function checkLifetime(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  const max = issuer.preset.maxTokenLifetimeSeconds;
  const { exp, iat } = claims;
  const lifetime = (typeof exp === 'number' ? exp : 0) - (typeof iat === 'number' ? iat : 0);
  if (max !== undefined && lifetime > max) {
    throw new ExchangeError('token_lifetime_too_long', `exp - iat is ${lifetime}s; ${issuer.preset.name} tokens may live ${max}s at most`);
  }
}

/** The claims that prove a CI job token: the same keys may sign other kinds (GitLab user logins, Google sign-ins). */
function checkRequiredClaims(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  for (const key of ['sub', ...issuer.preset.requiredClaims]) {
    if (!isPresent(claimReader(key)(claims))) throw new ExchangeError('claims_invalid', `missing required claim ${key}`);
  }
}

/** Claims of a known type must arrive with that type: no silent coercion of an array or object into a match. */
function checkClaimTypes(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  for (const [key, expected] of Object.entries(issuer.preset.claimTypes)) {
    const value = claimReader(key)(claims);
    if (value === undefined) continue;
    const actual = typeOf(value);
    const ok =
      actual === expected || (expected === 'array' && actual === 'string[]') || (expected === 'string|null' && (actual === 'string' || actual === 'null'));
    if (!ok) throw new ExchangeError('claims_invalid', `claim ${key} is ${actual}, expected ${expected}`);
  }
}

function checkClaimFormats(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  for (const [key, format] of Object.entries(issuer.preset.claimFormats)) {
    const value = claimReader(key)(claims);
    if (!isPresent(value)) continue;
    if (!format.pattern.test(canonicalText(value) ?? '')) throw new ExchangeError('claims_invalid', `claim ${key} is not ${format.description}`);
  }
}

/** A per-tenant issuer URL names its tenant; the token must name the same one (Azure DevOps signs every org with one key set). */
function checkBoundClaims(claims: Readonly<Record<string, unknown>>, issuer: TrustedIssuer): void {
  for (const [key, expected] of Object.entries(issuer.boundClaims)) {
    const value = claims[key];
    if (typeof value !== 'string' || asciiLowerCase(value) !== asciiLowerCase(expected)) {
      throw new ExchangeError('claims_invalid', `claim ${key} is ${JSON.stringify(value)}, but the issuer ${issuer.url} is ${expected}'s`);
    }
  }
}
