import { decodeJwt } from 'jose';
import { boundKeyThumbprint, dpopProofKey, DpopProofError, verifyDpopProof, type VerifiedDpopProof } from '../dpop/dpop-proof.ts';
import type { DpopReplayStore } from '../dpop/dpop-replay.ts';
import type { AuditEventDraft } from '../audit/audit-event.ts';
import type { Reason } from '../errors/reasons.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import type { RateLimitedError } from '../limits/rate-limited-error.ts';
import type { RequestLimits } from '../limits/request-limits.ts';
import { spendUnverifiedBudget } from '../limits/unverified-record-budget.ts';
import { sha256Hex } from '../mint/sha256-hex.ts';
import { appendExamination, examinationRecord, examineToken, recordExamination, type RevocationDeps } from './examine-token.ts';

/**
 * The GitHub installation tokens this broker issued and has yet to revoke (features/github/app): one handed back is revoked
 * at its own App's API, which only the broker knows, now rather than when its policy's TTL passes.
 */
export interface PendingGitHubTokens {
  /** Makes the pending token with this SHA-256 due for revocation now: the id of the grant's audit record, or undefined when none is pending. */
  handBack(tokenSha256: string): Promise<string | undefined>;
}

/**
 * What revocation needs beyond examination: where a bound token's holder's DPoP proof is claimed once, the budget of records
 * strangers earn, and, with a GitHub App, the GitHub tokens it issued.
 */
export interface RevokeDeps extends RevocationDeps {
  readonly dpopReplay: DpopReplayStore;
  readonly limits: Pick<RequestLimits, 'forUnverifiedRecord'>;
  readonly github?: PendingGitHubTokens;
}

/** Who revokes: the token's holder, with the request's `DPoP` header if it had one, or an operator by the `sub` of its keyway token. */
export type Revoker = { readonly holder: true; readonly dpopProof?: string } | { readonly operator: string };

/**
 * Revoked, or asked about a token that was not live (both answered alike); or `refused`: the holder of a bound token proved
 * no key (`auditEventId` its record). `limited`: the request was past the unverified budget, so its record is there only
 * for a run's first; a refused proof is then the limit's refusal, a token that was not live is answered alike all the same.
 */
export interface Revocation {
  readonly refused?: { readonly message: string; readonly auditEventId?: string };
  readonly limited?: RateLimitedError;
}

/**
 * RFC 7009 token revocation of a keyway access token, by its holder or an operator with
 * `tokens:revoke`. The answer is the same whatever the token was (§2.2: an invalid token is not
 * an error), so it tells a caller nothing; the audit record says what happened. A token that claims
 * a DPoP binding (`cnf`) is worth nothing without its key, so its holder must prove that key as for
 * any use of it (RFC 9449: `htm` POST, `htu` the issuer's `/revoke`, `ath` of the token, used once):
 * without a proof that fits, the revocation is refused, and recorded, whatever the token is (live or
 * not), so the refusal tells no more than the token's own claims. Resolves once the revocation and
 * its record are durable, and rejects (no answer but an error) if either fails.
 *
 * Anyone can ask, as a holder, about a token that is not live and claims any identity: those records (but for a token of
 * this broker's that verified and was already revoked: its holder is no stranger), and the refusals
 * of a proof (made before the token is examined), spend the unverified budget of the chain they go to, as /token's
 * refusals of tokens that did not verify do. Past it, a token that is not live is still answered as a live one is
 * (200), recorded only as the first of the run: the budget decides what is written, never what the caller learns.
 * A refused proof is refused whatever the token is, so past the budget it is the limit's refusal (429) instead.
 *
 * A token that is no JWT at all may be a GitHub installation token this broker issued: found by its SHA-256 among those still
 * pending, it is handed back (revoked at its App's API now) and recorded by that SHA-256 as a verified caller's revocation.
 */
export async function revokeToken(deps: RevokeDeps, token: string, caller: Revoker, context: RequestContext): Promise<Revocation> {
  const now = deps.now();
  const recordedCaller = 'operator' in caller ? caller : { holder: true as const };
  const record = (reason: Reason, detail: string) => examinationRecord(deps, { token, caller: recordedCaller, reason, detail, context, now });
  const proof = 'holder' in caller ? await holderProof(deps, token, caller.dpopProof, now) : undefined;
  if (proof?.refusal !== undefined) return refuseStranger(deps, record('dpop_proof_invalid', `not revoked: ${proof.refusal}`), proof.refusal);
  const examined = await examineToken(deps, token, now);
  const by = 'operator' in caller ? `operator ${caller.operator}` : 'its holder';
  if (!examined.live && examined.reason === 'token_malformed' && deps.github !== undefined) {
    const digest = sha256Hex(token);
    const grantedIn = await deps.github.handBack(digest);
    if (grantedIn !== undefined) {
      const detail = `a GitHub installation token (granted in ${grantedIn}) handed back by ${by}: revoked at its App's API by the revocation round, now (or at its retry, if an attempt failed)`;
      await appendExamination(deps, { ...record('token_revoked', detail), subject_token: { sha256: digest } });
      return {};
    }
  }
  if (!examined.live) {
    // A session whose sign-in token was revoked is over, but was never revoked itself: the record says which.
    const detail =
      examined.revoked === 'itself'
        ? `already revoked; asked again by ${by}`
        : examined.revoked === 'signed-in-with'
          ? `already over: ${examined.detail}; asked by ${by}`
          : `not revoked (${examined.detail})`;
    const event = record(examined.reason, detail);
    // A token this broker signed that was already revoked verified: its holder's record is a verified caller's, bounded by the token's life.
    const limited = 'holder' in caller && examined.verified !== true ? await spendUnverifiedBudget(deps, event) : undefined;
    if (limited === undefined || limited.recorded) await appendExamination(deps, event);
    return limited === undefined ? {} : { limited };
  }
  // Claimed once the token is live and about to be revoked: a retry after an answer that was lost finds it already revoked (200),
  // and a refused request stores nothing. A store that cannot answer rejects (503: nothing was revoked, retry).
  if (proof?.verified !== undefined && !(await deps.dpopReplay.claim(dpopProofKey(proof.verified), proof.verified.acceptedUntil, now))) {
    const message = 'the DPoP proof was already used; make a new proof for every request';
    return refuseRecorded(deps, record('dpop_proof_replayed', `not revoked: ${message}`), message);
  }
  const recorded = recordExamination(deps, { token, caller: recordedCaller, reason: 'token_revoked', detail: `revoked by ${by}`, context, now });
  await deps.revocations.revoke(examined.claims, await recorded, now);
  return {};
}

/** A revocation or introspection refused: with `limited`, by the unverified budget, in its stead. */
export type RefusedRevocation = Revocation & { readonly refused: NonNullable<Revocation['refused']> };

/** Refuses a request with `message`, recorded as `event`. */
export async function refuseRecorded(deps: Pick<RevokeDeps, 'audit'>, event: AuditEventDraft, message: string): Promise<RefusedRevocation> {
  return { refused: { message, auditEventId: await appendExamination(deps, event) } };
}

/**
 * Refuses a stranger's request (no operator asked, and nothing it sent verified) with `message`: recorded as `event` within the
 * unverified budget of its chain; past it, the limit's refusal, recorded only as the first of its run.
 */
export async function refuseStranger(deps: Pick<RevokeDeps, 'audit' | 'limits'>, event: AuditEventDraft, message: string): Promise<RefusedRevocation> {
  const limited = await spendUnverifiedBudget(deps, event);
  if (limited === undefined) return refuseRecorded(deps, event, message);
  return { refused: { message: limited.message, ...(limited.recorded ? { auditEventId: await appendExamination(deps, event) } : {}) }, limited };
}

/**
 * A holder's proof of the key a token claims to be bound to: none needed (the token claims no `cnf`), the verified proof
 * (not yet claimed), or why the revocation is refused.
 */
async function holderProof(
  deps: RevokeDeps,
  token: string,
  proof: string | undefined,
  now: number,
): Promise<{ readonly verified: VerifiedDpopProof; readonly refusal?: undefined } | { readonly refusal: string } | undefined> {
  const cnf = claimedBinding(token);
  if (cnf === undefined) return undefined;
  if (proof === undefined) return { refusal: 'the token is bound to a DPoP key (cnf): its holder revokes it with a DPoP proof of that key' };
  const jkt = boundKeyThumbprint(cnf);
  let verified: VerifiedDpopProof;
  try {
    verified = await verifyDpopProof(proof, { method: 'POST', url: `${deps.issuer}/revoke`, now, accessToken: token });
  } catch (error) {
    if (error instanceof DpopProofError) return { refusal: error.message };
    throw error;
  }
  if (jkt === undefined || verified.jkt !== jkt) return { refusal: 'the DPoP proof is signed by another key than the token is bound to' };
  return { verified };
}

/** The token's `cnf` as it claims it, unverified: a binding can only make the revocation ask more, never less. */
function claimedBinding(token: string): unknown {
  try {
    return decodeJwt(token)['cnf'];
  } catch {
    return undefined;
  }
}
