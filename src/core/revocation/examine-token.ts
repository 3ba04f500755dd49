import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { monotonicFactory } from 'ulid';
import type { AppendedRecord, AuditEvent, AuditEventDraft, AuditLog } from '../audit/audit-event.ts';
import { boundAuditEvent } from '../audit/bound-audit-event.ts';
import { describePresentedToken } from '../audit/presented-token.ts';
import { SIGNED_IN_WITH_CLAIM, SIGNED_IN_WITH_KEY_CLAIM } from '../mint/page-session-token.ts';
import { pooledRandom } from '../mint/pooled-random.ts';
import { REASONS, type Reason } from '../errors/reasons.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import { sha256Hex } from '../mint/sha256-hex.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../mint/verify-access-token.ts';
import type { RevocationList } from './revocation-list.ts';

/** What revocation and introspection need: the broker's own keys and issuer, the list, the log. */
export interface RevocationDeps {
  readonly issuer: string;
  /** The broker's own key ring, never a remote fetch. */
  readonly keys: JWTVerifyGetKey;
  readonly revocations: RevocationList;
  readonly audit: AuditLog;
  readonly now: () => number;
}

/**
 * Who asks: the token's own holder (it came with nothing else), an operator by the `sub` of its keyway token, a webhook by
 * its event, or a command run on the data directory (`local`: the account that ran it, which no token vouches for).
 */
export type Caller = { readonly holder: true } | { readonly operator: string } | { readonly webhook: string } | { readonly local: string };

/**
 * A token examined: live and this broker's, with its claims; or why not, as an audit reason. `verified`: it is one of this
 * broker's that verified but was revoked, so whoever presents it holds a token keyway issued, not one a stranger made up;
 * `revoked` says which was: the token itself, or the token its /audit session was signed in with (revokedAs).
 */
export type Examined =
  | { readonly live: true; readonly claims: JWTPayload & { readonly jti: string; readonly exp: number } }
  | { readonly live: false; readonly reason: Reason; readonly detail: string; readonly verified?: true; readonly revoked?: 'itself' | 'signed-in-with' };

/**
 * Checks that a token is a live keyway access token of this broker (RFC 9068: typ at+jwt, ES256,
 * our `iss`, signed by our keys, not expired, and not revoked), whatever its audience.
 */
export async function examineToken(deps: RevocationDeps, token: string, now: number): Promise<Examined> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, deps.keys, {
      issuer: deps.issuer,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      currentDate: new Date(now),
      // As long as verifyAccessToken takes it: a token in the skew after exp still works, so it can still be revoked.
      clockTolerance: ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['jti', 'exp', 'sub'],
    }));
  } catch (error) {
    if (!(error instanceof errors.JOSEError)) throw error;
    return { live: false, reason: joseReason(error), detail: error.message };
  }
  const claims = payload as JWTPayload & { jti: string; exp: number };
  const withdrawn = await signedInWithWithdrawnKey(deps.keys, claims);
  if (withdrawn !== undefined) return { live: false, reason: 'signature_invalid', detail: withdrawn };
  const revoked = await revokedAs(deps.revocations, claims, now);
  if (revoked === 'itself') return { live: false, reason: 'token_revoked', detail: 'the token was revoked', verified: true, revoked };
  if (revoked === 'signed-in-with') {
    return { live: false, reason: 'token_revoked', detail: 'the access token the session was signed in with was revoked', verified: true, revoked };
  }
  return { live: true, claims };
}

/**
 * Whether a verified token of the broker's is revoked, in one read of the list: itself, or, for an /audit page session,
 * the token it was signed in with (SIGNED_IN_WITH_CLAIM), which ends the session for the page and `/introspect` alike.
 */
export async function revokedAs(
  revocations: Pick<RevocationList, 'areRevoked'>,
  claims: JWTPayload & { readonly jti: string },
  now: number,
): Promise<'itself' | 'signed-in-with' | undefined> {
  const signedInWith = claims[SIGNED_IN_WITH_CLAIM];
  const [itself, withdrawn] = await revocations.areRevoked(typeof signedInWith === 'string' ? [claims.jti, signedInWith] : [claims.jti], now);
  return itself === true ? 'itself' : withdrawn === true ? 'signed-in-with' : undefined;
}

/**
 * Why an /audit page session is over because of the key that signed the token it was signed in with, or undefined: that
 * key is no longer among `keys` (it was withdrawn), or the session does not name it (SIGNED_IN_WITH_KEY_CLAIM). Any other
 * token of the broker's answers undefined.
 */
export async function signedInWithWithdrawnKey(keys: JWTVerifyGetKey, claims: JWTPayload): Promise<string | undefined> {
  if (claims[SIGNED_IN_WITH_CLAIM] === undefined) return undefined;
  const kid = claims[SIGNED_IN_WITH_KEY_CLAIM];
  if (typeof kid !== 'string') return 'the session does not name the key of the access token it was signed in with';
  try {
    // Operator tokens are ES256 alone (verifyAccessToken); the session's own signature verified already.
    await keys({ alg: 'ES256', kid }, { payload: '', signature: '' });
    return undefined;
  } catch (error) {
    if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
    return `the access token the session was signed in with was signed by key ${kid}, which the broker no longer publishes (withdrawn)`;
  }
}

function joseReason(error: errors.JOSEError): Reason {
  if (error instanceof errors.JWTExpired) return 'token_expired';
  if (error instanceof errors.JWTClaimValidationFailed) return 'claims_invalid';
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) return 'signature_invalid';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  return 'token_malformed';
}

const nextId = monotonicFactory(pooledRandom);

/** What an examination's record says: the token, the caller, the outcome. */
export interface ExaminationFacts {
  readonly token?: string;
  readonly caller: Caller;
  readonly reason: Reason;
  readonly detail: string;
  readonly context: RequestContext;
  readonly now: number;
}

/**
 * The audit record of a revocation or introspection: the token by its digest (describePresentedToken) and claimed `jti`
 * when it is at hand (a run's tokens are known by `jti` alone, named in `detail`), the caller, the outcome.
 */
export async function recordExamination(deps: Pick<RevocationDeps, 'audit' | 'issuer'>, facts: ExaminationFacts): Promise<string> {
  return appendExamination(deps, examinationRecord(deps, facts));
}

/** recordExamination's record, not yet appended: its outcome can still change. */
export function examinationRecord(deps: Pick<RevocationDeps, 'issuer'>, facts: ExaminationFacts): AuditEventDraft {
  const { token, caller, context, now } = facts;
  return {
    id: nextId(now),
    time: new Date(now).toISOString(),
    decision: REASONS[facts.reason].decision,
    reason: facts.reason,
    detail: facts.detail,
    request: {
      id: context.requestId,
      ...(context.clientIp === undefined ? {} : { client_ip: context.clientIp }),
      ...(context.userAgent === undefined ? {} : { user_agent: context.userAgent }),
    },
    ...(token === undefined ? {} : { subject_token: describePresentedToken(token, sha256Hex).described }),
    ...('operator' in caller ? { issuer: deps.issuer, subject: caller.operator } : {}),
  };
}

/** Appends an examination's record, bounded as every record is; resolves to its id once durable. */
export async function appendExamination(deps: Pick<RevocationDeps, 'audit'>, event: AuditEvent): Promise<string> {
  return (await appendExaminationRecord(deps, event)).event.id;
}

/** appendExamination, resolving to the record as appended and its link in the chain: what the alert rules read. */
export async function appendExaminationRecord(deps: Pick<RevocationDeps, 'audit'>, event: AuditEvent): Promise<AppendedRecord> {
  const recorded = boundAuditEvent(event);
  return { event: recorded, link: await deps.audit.append(recorded) };
}

/** Appends examinations' records together (AuditLog.appendAll), each bounded; resolves to their ids, in order, once all are durable. */
export async function appendExaminations(deps: Pick<RevocationDeps, 'audit'>, events: readonly AuditEvent[]): Promise<string[]> {
  const recorded = events.map(boundAuditEvent);
  await deps.audit.appendAll(recorded);
  return recorded.map((event) => event.id);
}
