import { sha256Hex } from '../mint/sha256-hex.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../mint/verify-access-token.ts';
import type { HoldsKeys, ReplayClaim, ReplayGuard } from '../replay/replay-guard.ts';

/**
 * The keyway tokens ended before their `exp` (RFC 7009), by `jti`. An entry is kept until the
 * token's own `exp` and the clock skew tolerated beyond it, after which the token is refused anyway. Written through the replay guard's
 * store (the SQLite file on Node, the sharded Durable Objects on Workers), so a revocation is as
 * durable, and as spread out, as a single-use claim.
 */
export interface RevocationList {
  /** Resolves once durable. Revoking a revoked token again changes nothing. */
  revoke(token: { readonly jti: string; readonly exp: number }, auditEventId: string, now: number): Promise<void>;
  /** Revokes each token as `revoke` does, in as few commits as the store makes of them (the end of a job's many tokens). */
  revokeAll(tokens: readonly RevokedToken[], now: number): Promise<void>;
  /**
   * Takes, for `leaseSeconds`, the right to record and revoke each token, atomically: of any number of callers naming one
   * token at once, exactly one takes it, and the others are told the audit record its taker will write (in the order of
   * `tokens`). The lease only ends: a taker that fails before revoking leaves the token reserved until it has run out.
   */
  reserve(tokens: readonly Pick<RevokedToken, 'jti' | 'auditEventId'>[], leaseSeconds: number, now: number): Promise<Reservation[]>;
  isRevoked(jti: string, now: number): Promise<boolean>;
  /** Whether each token is revoked, read together (one read of each store shard they are in): in the order of `jtis`. */
  areRevoked(jtis: readonly string[], now: number): Promise<boolean[]>;
}

/** A token reserved (`reserve`): by this caller, or by another, who records its revocation as `auditEventId`. */
export type Reservation = { readonly taken: true } | { readonly taken: false; readonly auditEventId: string };

/** A token to revoke, and the audit record of its revocation. */
export interface RevokedToken {
  readonly jti: string;
  readonly exp: number;
  readonly auditEventId: string;
}

/** Lower-case hex, so Workers shard it as they shard replay keys; apart from every replay key by its prefix. */
export function revocationKey(jti: string): string {
  return sha256Hex(`revoked\n${jti}`);
}

/** The key of a revocation under way (`reserve`), apart from the revocation's own. */
function reservationKey(jti: string): string {
  return sha256Hex(`revoking\n${jti}`);
}

export function revocationList(guard: ReplayGuard, holds: HoldsKeys): RevocationList {
  // Kept as long as the token verifies: until exp plus the clock skew verifyAccessToken tolerates.
  const claimOf = ({ jti, exp, auditEventId }: RevokedToken, now: number): ReplayClaim => ({
    key: revocationKey(jti),
    expiresAt: exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS,
    auditEventId,
    now,
  });
  return {
    revoke: async (token, auditEventId, now) => {
      await guard.claim(claimOf({ ...token, auditEventId }, now));
    },
    revokeAll: async (tokens, now) => {
      await guard.claimAll(tokens.map((token) => claimOf(token, now)));
    },
    reserve: async (tokens, leaseSeconds, now) => {
      const expiresAt = Math.floor(now / 1000) + leaseSeconds;
      const reserved = await guard.claimAll(tokens.map(({ jti, auditEventId }) => ({ key: reservationKey(jti), expiresAt, auditEventId, now })));
      return reserved.map((result) => (result.claimed ? { taken: true } : { taken: false, auditEventId: result.heldBy.auditEventId }));
    },
    isRevoked: async (jti, now) => (await holds([revocationKey(jti)], now))[0] === true,
    areRevoked: (jtis, now) => holds(jtis.map(revocationKey), now),
  };
}
