import type { RequestContext } from '../exchange/exchange-token.ts';
import { examineToken, recordExamination, type RevocationDeps } from './examine-token.ts';

/** An RFC 7662 §2.2 answer: `active: false` and nothing else, or the token's claims. */
export type Introspection =
  | { readonly active: false }
  | ({ readonly active: true; readonly token_type: 'Bearer' | 'DPoP' } & Readonly<Record<string, unknown>>);

/**
 * RFC 7662 introspection of a keyway access token for an operator or resource server holding a
 * keyway token with `tokens:introspect`: active (this broker's, signed, unexpired, not revoked)
 * with its claims, or inactive with no detail (§2.2). Audited either way.
 */
export async function introspectToken(deps: RevocationDeps, token: string, operator: string, context: RequestContext): Promise<Introspection> {
  const now = deps.now();
  const examined = await examineToken(deps, token, now);
  const detail = examined.live ? 'active' : `inactive: ${examined.reason} (${examined.detail})`;
  await recordExamination(deps, { token, caller: { operator }, reason: 'token_introspected', detail, context, now });
  if (!examined.live) return { active: false };
  return { ...examined.claims, active: true, token_type: examined.claims['cnf'] === undefined ? 'Bearer' : 'DPoP' };
}
