/**
 * An `/audit` page session's audience (core/revocation/page-session.ts): no operator API takes it (theirs is the issuer),
 * nor `/proxy` (`{issuer}/proxy/{upstream}`), nor `/token` (no policy trusting the broker may name it: load-policies.ts).
 */
export function pageSessionAudience(issuer: string): string {
  return `${issuer}/audit`;
}
