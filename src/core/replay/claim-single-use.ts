import { ExchangeError } from '../errors/exchange-error.ts';
import { MAX_TOKEN_AGE_SECONDS } from '../verify/trusted-issuer.ts';
import type { VerifiedSubjectToken } from '../verify/verify-subject-token.ts';
import type { ReplayGuard } from './replay-guard.ts';
import { replayKey } from './replay-key.ts';

export interface SingleUseContext {
  readonly guard: ReplayGuard;
  readonly auditEventId: string;
  /** Milliseconds since the epoch. */
  readonly now: number;
  readonly clockToleranceSeconds: number;
}

/**
 * Claims a verified subject token for the exchange about to be granted, or refuses it as
 * `replayed`. Called after the policy decision, so a refused attempt (wrong scope, wrong
 * audience) never uses the token up; and before the token is minted and audited, so a claim
 * whose audit record then fails to be written has issued nothing: it fails closed.
 */
export async function claimSingleUse(token: string, verified: VerifiedSubjectToken, context: SingleUseContext): Promise<void> {
  const { claims, issuer } = verified;
  const { key, basis } = replayKey(token, issuer.url, claims.jti);
  // Verification refuses the token after exp, and after iat plus its issuer's age cap, each with the clock tolerance. Not
  // the cap of the moment: a policy change may raise it (up to MAX_TOKEN_AGE_SECONDS), and the token would verify again.
  const expiresAt = Math.min(claims.exp ?? 0, (claims.iat ?? 0) + MAX_TOKEN_AGE_SECONDS) + context.clockToleranceSeconds;
  let result;
  try {
    result = await context.guard.claim({ key, expiresAt, auditEventId: context.auditEventId, now: context.now });
  } catch (cause) {
    throw new ExchangeError('replay_guard_unavailable', `single use could not be checked: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
  if (!result.claimed) {
    const first = result.heldBy;
    throw new ExchangeError(
      'replayed',
      `token (by ${basis}) was already exchanged, in audit event ${first.auditEventId} at ${new Date(first.claimedAt).toISOString()}`,
    );
  }
}
