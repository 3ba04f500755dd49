import { decodeProtectedHeader, type JWTVerifyGetKey } from 'jose';
import type { RequestContext } from '../exchange/exchange-token.ts';
import type { KeyRing } from '../mint/key-ring.ts';
import { mintAccessToken } from '../mint/mint-access-token.ts';
import { pageSessionAudience, SIGNED_IN_WITH_CLAIM, SIGNED_IN_WITH_KEY_CLAIM } from '../mint/page-session-token.ts';
import { AccessTokenError, verifyAccessToken, type KeywayAccessToken } from '../mint/verify-access-token.ts';
import { appendExamination, examinationRecord, recordExamination, revokedAs, signedInWithWithdrawnKey, type RevocationDeps } from './examine-token.ts';

/**
 * The longest an `/audit` page session lasts, whatever the token it was signed in with: a working day. It never outlives
 * that token either.
 */
export const PAGE_SESSION_MAX_SECONDS = 8 * 60 * 60;

/** An `/audit` page session, verified: the broker's own token for the page, naming the operator token it was signed in with. */
export type PageSession = KeywayAccessToken & { readonly [SIGNED_IN_WITH_CLAIM]: string };

export interface PageSessionDeps extends Pick<RevocationDeps, 'issuer' | 'audit' | 'revocations' | 'now'> {
  readonly keys: () => KeyRing;
}

/** An operator token the page admitted: verified, its scopes checked, not revoked. */
export interface AdmittedToken {
  readonly token: string;
  readonly claims: KeywayAccessToken;
}

/**
 * Mints the session an admitted operator token signs in to: the same `sub`, the token's `client_id`, those of `scopes` it
 * carries, its `jti` as SIGNED_IN_WITH_CLAIM and its key's `kid` as SIGNED_IN_WITH_KEY_CLAIM, and at most the rest of its life and PAGE_SESSION_MAX_SECONDS. The session
 * is handed out only once its record (`audit_page_signed_in`: the token by its hash and `jti`, the session in `issued`) is
 * durable; rejects if it cannot be written. A token with no whole second left is refused as expired.
 */
export async function startPageSession(
  deps: PageSessionDeps,
  admitted: AdmittedToken,
  scopes: readonly string[],
  context: RequestContext,
): Promise<{ readonly token: string; readonly expiresIn: number }> {
  const { claims } = admitted;
  const now = deps.now();
  const ttlSeconds = Math.min(claims.exp - Math.floor(now / 1000), PAGE_SESSION_MAX_SECONDS);
  if (ttlSeconds < 1) throw new AccessTokenError('invalid_token', 'the access token has expired');
  // Every token the broker signs names its key; one that names none could never be told apart once its key is withdrawn.
  const { kid } = decodeProtectedHeader(admitted.token);
  if (kid === undefined) throw new AccessTokenError('invalid_token', 'the access token does not name the key that signed it (kid)');
  const held = claims.scope.split(' ');
  const grant = {
    policy: { id: claims.client_id },
    audiences: [pageSessionAudience(deps.issuer)],
    scopes: scopes.filter((scope) => held.includes(scope)),
    ttlSeconds,
    subject: claims.sub,
    claims: { [SIGNED_IN_WITH_CLAIM]: claims.jti, [SIGNED_IN_WITH_KEY_CLAIM]: kid },
  };
  const minted = await mintAccessToken({ issuer: deps.issuer, key: deps.keys().signing, grant, source: { iss: claims.iss, sub: claims.sub }, now });
  const event = examinationRecord(deps, {
    token: admitted.token,
    caller: { operator: claims.sub },
    reason: 'audit_page_signed_in',
    detail: `signed in to /audit with token ${claims.jti}; session ${minted.jti} ends by ${new Date(minted.expiresAt * 1000).toISOString()}`,
    context,
    now,
  });
  event.issued = { jti: minted.jti, sub: claims.sub, aud: grant.audiences, scope: grant.scopes, exp: minted.expiresAt };
  await appendExamination(deps, event);
  return { token: minted.token, expiresIn: ttlSeconds };
}

/**
 * Verifies a page session: signed by the broker's keys, for the page's audience, carrying `scopes` and the token it was
 * signed in with, whose key the broker still publishes (signedInWithWithdrawnKey). Whether it or that token was revoked
 * is for `pageSessionRevoked`. Throws AccessTokenError otherwise.
 */
export async function verifyPageSession(
  token: string,
  broker: { readonly issuer: string; readonly keys: JWTVerifyGetKey; readonly now: () => number },
  scopes: readonly string[],
): Promise<PageSession> {
  const claims = await verifyAccessToken(token, { ...broker, audience: pageSessionAudience(broker.issuer), scopes });
  const signedInWith = claims[SIGNED_IN_WITH_CLAIM];
  if (typeof signedInWith !== 'string') throw new AccessTokenError('invalid_token', 'the token is not an /audit page session');
  const withdrawn = await signedInWithWithdrawnKey(broker.keys, claims);
  if (withdrawn !== undefined) throw new AccessTokenError('invalid_token', withdrawn);
  return { ...claims, [SIGNED_IN_WITH_CLAIM]: signedInWith };
}

/** Why a session is over before its `exp`, or undefined: it was signed out of, or the token it was signed in with was revoked. */
export async function pageSessionRevoked(deps: Pick<PageSessionDeps, 'revocations' | 'now'>, session: PageSession): Promise<string | undefined> {
  const revoked = await revokedAs(deps.revocations, session, deps.now());
  if (revoked === 'itself') return 'the session was signed out of';
  return revoked === 'signed-in-with' ? 'the access token the session was signed in with was revoked' : undefined;
}

/** Sign-out: the session revoked through the revocation list, recorded as every revocation is (`token_revoked`) before it takes effect. */
export async function endPageSession(deps: PageSessionDeps, token: string, session: PageSession, context: RequestContext): Promise<void> {
  const now = deps.now();
  const detail = `revoked by operator ${session.sub}: signed out of /audit`;
  const recorded = await recordExamination(deps, { token, caller: { operator: session.sub }, reason: 'token_revoked', detail, context, now });
  await deps.revocations.revoke(session, recorded, now);
}
