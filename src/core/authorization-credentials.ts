/** The auth-schemes keyway takes its tokens under, spelt as keyway writes them (in `WWW-Authenticate`, say). */
export type CredentialScheme = 'Bearer' | 'DPoP';

export interface Credentials {
  readonly scheme: CredentialScheme;
  readonly token: string;
}

// The scheme is ASCII letters before it is folded: a fold of other characters (the Kelvin sign K to k, say) never makes one.
const CREDENTIALS = /^([A-Za-z]+) +([A-Za-z0-9._~+/-]+=*)$/;
const SCHEMES: ReadonlyMap<string, CredentialScheme> = new Map([
  ['bearer', 'Bearer'],
  ['dpop', 'DPoP'],
]);

/**
 * The token in an `Authorization` value, as RFC 9110 §11.4 writes credentials: the auth-scheme `Bearer` (RFC 6750 §2.1) or
 * `DPoP` (RFC 9449 §7.1) in any case (§11.1), one or more spaces (1*SP: no tab), and a token68 (§11.2), nothing around them
 * (the Fetch Headers a request's value is read from have stripped the whitespace around it). Anything else is no credential.
 *
 * Every reader of keyway's tokens in a request reads them with this: the middleware that refuses a revoked token lets a request
 * whose credential it cannot read go on, which is safe only because the route cannot read one either.
 */
export function parseCredentials(authorization: string | null | undefined): Credentials | undefined {
  const [, scheme, token] = CREDENTIALS.exec(authorization ?? '') ?? [];
  const known = scheme === undefined ? undefined : SCHEMES.get(scheme.toLowerCase());
  return known === undefined || token === undefined ? undefined : { scheme: known, token };
}
