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
