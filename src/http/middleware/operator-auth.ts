import type { MiddlewareHandler } from 'hono';
import { DpopReplayUnavailableError, type DpopReplayStore } from '../../core/dpop/dpop-replay.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import type { ReplayGuard } from '../../core/replay/replay-guard.ts';
import { keywayAuth, type KeywayAuthVariables } from './keyway-auth.ts';
import { ownKeys } from './own-keys.ts';

/** What the broker checks its own access tokens with, where it takes them as credentials. */
export interface OwnTokens {
  readonly issuer: string;
  readonly keys: () => KeyRing;
  /** Where a DPoP proof is claimed once for the whole deployment: every process (Node) and isolate (Workers). */
  readonly dpopReplay: DpopReplayStore;
}

/** The broker's own access token, issued by and for it (verified with its own keys), carrying `scopes`. */
export function operatorAuth(own: OwnTokens, scopes: readonly string[]): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  // A DPoP proof names the URL the client addressed: the issuer's origin, never one the request's Host header claims.
  return keywayAuth({ issuer: own.issuer, audience: own.issuer, scopes, keys: ownKeys(own.keys), dpopReplay: own.dpopReplay, externalOrigin: own.issuer });
}

/**
 * DPoP proofs claimed in the broker's single-use guard, which every process (Node) and isolate
 * (Workers) shares: an in-memory store would take a copied proof once more in each. A guard that
 * cannot answer leaves the proof unclaimed: the request is answered 503 (retry), never a 500.
 */
export function guardedDpopReplay(guard: ReplayGuard): DpopReplayStore {
  return {
    async claim(key, expiresAt, now) {
      try {
        return (await guard.claim({ key, expiresAt, auditEventId: '', now })).claimed;
      } catch (cause) {
        throw new DpopReplayUnavailableError('whether the DPoP proof was used before could not be checked', { cause });
      }
    },
  };
}
