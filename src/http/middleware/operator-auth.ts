import type { Context, MiddlewareHandler } from 'hono';
import { decodeJwt, type JWTPayload } from 'jose';
import type { AppendedRecord } from '../../core/audit/audit-event.ts';
import { DpopReplayUnavailableError, type DpopReplayStore } from '../../core/dpop/dpop-replay.ts';
import { errorText, type Logger } from '../../core/log.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import type { AccessTokenError } from '../../core/mint/verify-access-token.ts';
import type { ReplayGuard } from '../../core/replay/replay-guard.ts';
import {
  recordOperatorRefusal,
  type OperatorClaims,
  type OperatorRefusal,
  type OperatorRefusalDeps,
  type RecordedRefusal,
} from '../../core/revocation/operator-refusal.ts';
import type { BrokerMetrics } from '../../features/metrics/broker-metrics.ts';
import { recordedKeywayAuth, type KeywayAuthVariables } from './keyway-auth.ts';
import { ownKeys } from './own-keys.ts';
import { requestContext } from '../request-context.ts';

/** Records a refused operator credential with its request's context (recordOperatorRefusal). */
export type OperatorRefusals = (c: Context, refusal: Omit<OperatorRefusal, 'context'>) => Promise<RecordedRefusal>;

/** What the broker checks its own access tokens with, where it takes them as credentials. */
export interface OwnTokens {
  readonly issuer: string;
  readonly keys: () => KeyRing;
  /** Where a DPoP proof is claimed once for the whole deployment: every process (Node) and isolate (Workers). */
  readonly dpopReplay: DpopReplayStore;
  /** Where every refusal of one is recorded. */
  readonly refusals: OperatorRefusals;
  /** The broker's clock, which the tokens' times are checked at. */
  readonly now: () => number;
}

/** The broker's own access token, issued by and for it (verified with its own keys), carrying `scopes`; every refusal recorded. */
export function operatorAuth(own: OwnTokens, scopes: readonly string[]): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  // A DPoP proof names the URL the client addressed: the issuer's origin, never one the request's Host header claims.
  return recordedKeywayAuth(
    { issuer: own.issuer, audience: own.issuer, scopes, keys: ownKeys(own.keys), dpopReplay: own.dpopReplay, externalOrigin: own.issuer, now: own.now },
    (c, token, error) => own.refusals(c, refusedCredential(c, token, error)),
  );
}

/**
 * What the record of a refused operator credential says: where, why, and the credential (by its hash). Refused for its
 * scope, the token verified in full, so its claims name the operator; `operator` names the one of a token the broker's
 * keys signed that was refused for another reason (revoked).
 */
export function refusedCredential(c: Context, token: string | undefined, error: AccessTokenError, operator?: OperatorClaims): Omit<OperatorRefusal, 'context'> {
  const detail = `${c.req.method} ${c.req.path}: ${error.message}`;
  const presented = token === undefined ? {} : { token };
  const named = operator ?? (error.code === 'insufficient_scope' && token !== undefined ? operatorClaimsOf(decodeJwt(token)) : undefined);
  return {
    ...presented,
    ...(named === undefined ? {} : { operator: named }),
    reason: error.code === 'insufficient_scope' ? 'operator_scope_missing' : 'operator_token_invalid',
    detail,
  };
}

/** The operator a token the broker's own keys signed names, when it names one (a `sub`). */
export function operatorClaimsOf({ sub, client_id }: JWTPayload): OperatorClaims | undefined {
  return typeof sub === 'string' ? { sub, client_id } : undefined;
}

export interface OperatorRefusalRecorderDeps extends OperatorRefusalDeps {
  readonly clientIp: (c: Context) => string | undefined;
  readonly log: Logger;
  /** Where the refusals answered past the unverified budget, without a record, are counted. */
  readonly metrics: Pick<BrokerMetrics, 'rateLimited'>;
  /** Told of each refusal's record once durable: the alert rules read it after the answer. */
  readonly recorded: (c: Context, record: AppendedRecord) => void;
}

/**
 * OperatorRefusals over the audit log. A record that cannot be written leaves the refusal as it is (refusing needs no
 * record) and is logged as an error.
 */
export function operatorRefusals(deps: OperatorRefusalRecorderDeps): OperatorRefusals {
  return async (c, refusal) => {
    const context = requestContext(c, deps.clientIp);
    try {
      const recorded = await recordOperatorRefusal(deps, { ...refusal, context });
      if (recorded.limited !== undefined) deps.metrics.rateLimited(recorded.limited.limit, 'operator');
      if (recorded.record !== undefined) deps.recorded(c, recorded.record);
      return recorded;
    } catch (error) {
      deps.log.error('the record of a refused operator credential could not be written', { request_id: context.requestId, error: errorText(error) });
      return {};
    }
  };
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
