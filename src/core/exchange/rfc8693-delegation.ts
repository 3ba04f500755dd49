import { ExchangeError } from '../errors/exchange-error.ts';
import type { ActorClaim } from '../mint/mint-access-token.ts';

/** How many actors an issued token's `act` may name, the current one included. */
export const MAX_ACTOR_DEPTH = 4;

/**
 * The `act` claim of a token issued to a delegated request (RFC 8693 §4.1): the verified actor,
 * with the actors the subject token already names (its own `act`) nested inside, each reduced to
 * `iss` and `sub`. Refused when the subject's `may_act` names someone else (§4.4), or when the
 * chain would be deeper than MAX_ACTOR_DEPTH or is not made of `sub` (and `iss`) strings.
 */
export function actorClaim(subject: Readonly<Record<string, unknown>>, actor: { readonly iss: string; readonly sub: string }): ActorClaim {
  const mayAct = subject['may_act'];
  if (mayAct !== undefined && !names(mayAct, subject['iss'], actor)) {
    throw new ExchangeError('actor_not_permitted', `may_act of the subject token does not name ${actor.iss} ${actor.sub}`);
  }
  const prior = subject['act'] === undefined ? undefined : chain(subject['act'], 2);
  return { iss: actor.iss, sub: actor.sub, ...(prior === undefined ? {} : { act: prior }) };
}

/**
 * The actors a token already names in its `act` (RFC 8693 §4.1), the current one outermost, as a token issued for it
 * carries them on when no new actor comes: held to the same shape and depth as those `actorClaim` nests.
 */
export function actorsNamedBy(claims: Readonly<Record<string, unknown>>): ActorClaim | undefined {
  return claims['act'] === undefined ? undefined : chain(claims['act'], 1);
}

/** A `may_act` without `iss` names a party of the subject token's own issuer: a `sub` alone means nothing across issuers. */
function names(mayAct: unknown, subjectIssuer: unknown, actor: { readonly iss: string; readonly sub: string }): boolean {
  if (typeof mayAct !== 'object' || mayAct === null) return false;
  const { sub, iss } = mayAct as { sub?: unknown; iss?: unknown };
  return sub === actor.sub && (iss ?? subjectIssuer) === actor.iss;
}

function chain(act: unknown, depth: number): ActorClaim {
  if (depth > MAX_ACTOR_DEPTH) throw new ExchangeError('actor_chain_too_deep', `the actor chain is deeper than ${MAX_ACTOR_DEPTH}`);
  const { iss, sub, act: prior } = (typeof act === 'object' && act !== null ? act : {}) as { iss?: unknown; sub?: unknown; act?: unknown };
  if (typeof sub !== 'string' || (iss !== undefined && typeof iss !== 'string')) {
    throw new ExchangeError('claims_invalid', 'an act claim of the subject token is not an object with a sub string');
  }
  return { ...(iss === undefined ? {} : { iss }), sub, ...(prior === undefined ? {} : { act: chain(prior, depth + 1) }) };
}
