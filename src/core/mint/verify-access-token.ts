import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { KeywayError } from '../errors/keyway-error.ts';
import { boundKeyThumbprint, dpopProofKey, DpopProofError, verifyDpopProof, type VerifiedDpopProof } from '../dpop/dpop-proof.ts';
import { MemoryDpopReplayStore, type DpopReplayStore } from '../dpop/dpop-replay.ts';
import { JWKS_MAX_AGE_SECONDS } from './key-life-cycle.ts';

export interface VerifyAccessTokenOptions {
  /** The keyway broker's issuer URL (its KEYWAY_ISSUER). */
  readonly issuer: string;
  /** The audience this service answers to; the token's `aud` must contain it. */
  readonly audience: string;
  /** Scopes the token must all carry. */
  readonly scopes?: readonly string[];
  /** Where keys come from. Default: the broker's JWKS at `<issuer>/.well-known/jwks.json`, cached for its max-age (5 minutes). */
  readonly keys?: JWTVerifyGetKey;
  /** Seconds of clock skew tolerated; default 30. */
  readonly clockToleranceSeconds?: number;
  /** The time (ms since the epoch) the token's times and a DPoP proof's are checked at; default `Date.now`. The broker passes its own clock. */
  readonly now?: () => number;
  /** Where accepted DPoP proofs are remembered so each is good once. Default: this process's memory (one store for every call). */
  readonly dpopReplay?: DpopReplayStore;
  /** Ask the broker (RFC 7662 `POST /introspect`) whether the token was revoked; without it, revocation is not seen here. */
  readonly revocation?: RevocationCheck;
}

/** How `verifyAccessToken` learns of revocations: introspection at the broker, its "active" answers cached for a short while. */
export interface RevocationCheck {
  /** A keyway token for this broker (`aud` its issuer) with scope `tokens:introspect`, this service's own. */
  readonly credential: () => string | Promise<string>;
  /** How long an "active" answer is reused, so a revocation is seen within this delay; default 30, 0 asks every time. */
  readonly cacheSeconds?: number;
  readonly fetch?: typeof fetch;
}

/** How a DPoP-bound token was presented (RFC 9449 §7): `Authorization: DPoP <token>` and the `DPoP` proof header. */
export interface DpopPresentation {
  /** The request's `DPoP` header; undefined when it had none. */
  readonly proof: string | undefined;
  readonly method: string;
  /** The request URL as the client addressed it: behind a proxy, the external one. */
  readonly url: string;
}

export interface KeywayAccessToken extends JWTPayload {
  readonly iss: string;
  readonly sub: string;
  readonly client_id: string;
  readonly scope: string;
  readonly jti: string;
  readonly exp: number;
}

export type AccessTokenErrorCode = 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof';

/** An RFC 6750 error: `invalid_token` (401) or `insufficient_scope` (403); or RFC 9449's `invalid_dpop_proof` (401). */
export class AccessTokenError extends KeywayError {
  override readonly name = 'AccessTokenError';
  readonly code: AccessTokenErrorCode;

  constructor(code: AccessTokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Seconds of clock skew `verifyAccessToken` tolerates by default: a token is good until `exp` plus this. */
export const ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS = 30;

const remoteKeys = new Map<string, JWTVerifyGetKey>();
const defaultDpopReplay = new MemoryDpopReplayStore();
/** `issuer jti` → when (ms) the broker last answered "active"; each verifier reuses it for its own `cacheSeconds`. */
const activeAt = new Map<string, number>();
const ACTIVE_CACHE_SWEEP_AT = 10_000;

function brokerKeys(issuer: string): JWTVerifyGetKey {
  let keys = remoteKeys.get(issuer);
  if (keys === undefined) {
    // Kept as long as the broker's JWKS answer allows, not jose's 10 minutes: a key the broker withdrew goes within its max-age.
    keys = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`), { cacheMaxAge: JWKS_MAX_AGE_SECONDS * 1000 });
    remoteKeys.set(issuer, keys);
  }
  return keys;
}

/**
 * RFC 9068 §4 validation of a keyway access token: `typ` at+jwt, exact `iss`, `aud` containing
 * ours, ES256 signature from the broker's keys, `exp`, then every required scope. A token bound
 * to a DPoP key (`cnf.jkt`) is accepted only with `dpop`, the presentation of RFC 9449 §7: a proof
 * of this request, with `ath` of this token, signed by that key and not seen before. A bound token
 * without it (sent as a Bearer token) is refused, and so is an unbound one presented as DPoP.
 */
export async function verifyAccessToken(token: string, options: VerifyAccessTokenOptions, dpop?: DpopPresentation): Promise<KeywayAccessToken> {
  // Read at each check, as each is made: a key lookup (a JWKS fetched) or an introspection that takes time does not stretch a window.
  const clock = options.now ?? Date.now;
  const clockTolerance = options.clockToleranceSeconds ?? ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, options.keys ?? brokerKeys(options.issuer), {
      currentDate: new Date(clock()),
      issuer: options.issuer,
      audience: options.audience,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      clockTolerance,
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
    }));
  } catch (error) {
    if (error instanceof errors.JOSEError) throw new AccessTokenError('invalid_token', error.message, { cause: error });
    throw error;
  }
  // jose judged exp at the time it was called, before the key lookup; judged again once the keys answered.
  if (Number(payload.exp) <= Math.floor(clock() / 1000) - clockTolerance) throw new AccessTokenError('invalid_token', 'the token expired');
  const bound = await checkBinding(token, payload['cnf'], dpop, clock);
  const granted = typeof payload['scope'] === 'string' ? payload['scope'].split(' ') : [];
  const missing = (options.scopes ?? []).filter((scope) => !granted.includes(scope));
  if (missing.length > 0) throw new AccessTokenError('insufficient_scope', `the token lacks scope ${missing.join(' ')}`);
  // Claimed once the token, the proof and the scopes hold (a request refused for them stores nothing), and
  // before asking the broker about revocation, so a replayed proof costs no call to it.
  if (bound !== undefined && !(await (options.dpopReplay ?? defaultDpopReplay).claim(dpopProofKey(bound.proof), bound.proof.acceptedUntil, bound.now))) {
    throw new AccessTokenError('invalid_dpop_proof', 'the DPoP proof was already used');
  }
  if (options.revocation !== undefined) await checkNotRevoked(token, String(payload.jti), options.issuer, options.revocation, clock);
  return payload as KeywayAccessToken;
}

/** The verified proof of a bound token's presentation (not yet claimed), or undefined for an unbound Bearer token. */
async function checkBinding(
  token: string,
  cnf: unknown,
  dpop: DpopPresentation | undefined,
  clock: () => number,
): Promise<{ readonly proof: VerifiedDpopProof; readonly now: number } | undefined> {
  if (cnf === undefined && dpop === undefined) return undefined;
  const jkt = boundKeyThumbprint(cnf);
  if (dpop === undefined) throw new AccessTokenError('invalid_token', 'the token is bound to a DPoP key: send it as Authorization: DPoP with a proof');
  if (jkt === undefined) throw new AccessTokenError('invalid_token', 'the token is not bound to a DPoP key: send it as a Bearer token');
  if (dpop.proof === undefined) throw new AccessTokenError('invalid_dpop_proof', 'a DPoP-bound token needs a DPoP proof header');
  const now = clock();
  let proof;
  try {
    proof = await verifyDpopProof(dpop.proof, { method: dpop.method, url: dpop.url, now, accessToken: token });
  } catch (error) {
    if (error instanceof DpopProofError) throw new AccessTokenError('invalid_dpop_proof', error.message, { cause: error });
    throw error;
  }
  if (proof.jkt !== jkt) throw new AccessTokenError('invalid_dpop_proof', 'the DPoP proof is signed by another key than the token is bound to');
  return { proof, now };
}

/** Fails closed: an introspection that does not answer `active: true` refuses the token. */
async function checkNotRevoked(token: string, jti: string, issuer: string, check: RevocationCheck, clock: () => number): Promise<void> {
  const key = `${issuer} ${jti}`;
  const now = clock();
  const maxAgeMs = (check.cacheSeconds ?? 30) * 1000;
  if (now - (activeAt.get(key) ?? Number.NEGATIVE_INFINITY) < maxAgeMs) return;
  let active: unknown;
  try {
    const response = await (check.fetch ?? fetch)(`${issuer}/introspect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await check.credential()}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
    });
    if (!response.ok) throw new Error(`the broker answered ${response.status}`);
    ({ active } = (await response.json()) as { active?: unknown });
  } catch (error) {
    throw new AccessTokenError(
      'invalid_token',
      `whether the token was revoked could not be checked: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  if (active !== true) throw new AccessTokenError('invalid_token', 'the token was revoked');
  // Entries older than any sensible delay (an hour) are dropped once the map grows.
  if (activeAt.size >= ACTIVE_CACHE_SWEEP_AT) for (const [seen, at] of activeAt) if (now - at > 3600_000) activeAt.delete(seen);
  activeAt.set(key, now);
}
