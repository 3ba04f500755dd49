import type { RequestContext } from '../exchange/exchange-token.ts';
import { examineToken, recordExamination, type Caller, type RevocationDeps } from './examine-token.ts';

/**
 * RFC 7009 token revocation of a keyway access token, by its holder or an operator with
 * `tokens:revoke`. The answer is the same whatever the token was (§2.2: an invalid token is not
 * an error), so it tells a caller nothing; the audit record says what happened. Resolves once the
 * revocation and its record are durable, and rejects (no answer but an error) if either fails.
 */
export async function revokeToken(deps: RevocationDeps, token: string, caller: Exclude<Caller, { webhook: string }>, context: RequestContext): Promise<void> {
  const now = deps.now();
  const examined = await examineToken(deps, token, now);
  const by = 'operator' in caller ? `operator ${caller.operator}` : 'its holder';
  if (!examined.live) {
    const detail = examined.reason === 'token_revoked' ? `already revoked; asked again by ${by}` : `not revoked (${examined.detail})`;
    await recordExamination(deps, { token, caller, reason: examined.reason, detail, context, now });
    return;
  }
  const recorded = recordExamination(deps, { token, caller, reason: 'token_revoked', detail: `revoked by ${by}`, context, now });
  await deps.revocations.revoke(examined.claims, await recorded, now);
}
