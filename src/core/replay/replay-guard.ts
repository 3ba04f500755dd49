/**
 * Single use for subject tokens. The first exchange of a token claims it; every later one
 * finds the claim taken, until the token could no longer be exchanged anyway. Adapters must
 * make `claim` atomic: of any number of concurrent claims of one key, exactly one succeeds.
 */
export interface ReplayGuard {
  claim(claim: ReplayClaim): Promise<ReplayClaimResult>;
  /** Each claim as `claim` makes it, in as few commits as the store makes of them; the results in the order of `claims`. */
  claimAll(claims: readonly ReplayClaim[]): Promise<ReplayClaimResult[]>;
}

/** Whether the store holds an unexpired entry for a key: the read beside the guard's `claim`. */
export type HoldsKey = (key: string, now: number) => Promise<boolean>;
/** The same read of several keys together, answered in their order. */
export type HoldsKeys = (keys: readonly string[], now: number) => Promise<boolean[]>;

export interface ReplayClaim {
  /** Derived from the token (`replay-key.ts`), never the token itself. */
  readonly key: string;
  /** Seconds since the epoch after which the token is refused anyway, so the claim need not be kept. */
  readonly expiresAt: number;
  /** The audit event of the exchange that claims the token. */
  readonly auditEventId: string;
  /** Milliseconds since the epoch. Claims that expired before it are pruned. */
  readonly now: number;
}

export type ReplayClaimResult =
  | { readonly claimed: true }
  | { readonly claimed: false; readonly heldBy: { readonly auditEventId: string; readonly claimedAt: number } };
