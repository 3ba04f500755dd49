/**
 * An `/audit` page session's audience (core/revocation/page-session.ts): no operator API takes it (theirs is the issuer),
 * nor `/proxy` (`{issuer}/proxy/{upstream}`), nor `/token` (no policy trusting the broker may name it: load-policies.ts).
 */
export function pageSessionAudience(issuer: string): string {
  return `${issuer}/audit`;
}

/**
 * The `jti` of the operator token a session was signed in with; reserved (RESERVED_CLAIMS), so no token a policy grants
 * carries it. A session is over once that token is revoked, for the page and for `/introspect` alike.
 */
export const SIGNED_IN_WITH_CLAIM = 'src_jti';

/**
 * The `kid` of the key that signed the operator token a session was signed in with; reserved as SIGNED_IN_WITH_CLAIM is.
 * A session is over once the broker no longer publishes that key (withdrawn), as that token is: the session is signed by
 * whichever key was current, so a token a thief signed with a leaked retired key would otherwise outlive the withdrawal
 * in the session it started.
 */
export const SIGNED_IN_WITH_KEY_CLAIM = 'src_kid';
