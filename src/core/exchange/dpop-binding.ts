import { ExchangeError } from '../errors/exchange-error.ts';
import type { ReplayGuard } from '../replay/replay-guard.ts';
import type { DpopNonces } from '../dpop/dpop-nonce.ts';
import { dpopProofKey, DpopProofError, verifyDpopProof, type VerifiedDpopProof } from '../dpop/dpop-proof.ts';

/**
 * RFC 9449 at the token endpoint: checks the request's DPoP proof, if any, against this request
 * (`POST` to the advertised token endpoint, which is the external URL whatever proxies sit in
 * front, because KEYWAY_ISSUER is) and the server nonce when one is configured.
 */
export async function verifyTokenRequestProof(
  proof: string | undefined,
  context: { readonly tokenEndpoint: string; readonly now: number; readonly nonces: DpopNonces | undefined },
): Promise<VerifiedDpopProof | undefined> {
  if (proof === undefined) return undefined;
  const { nonces, now } = context;
  try {
    return await verifyDpopProof(proof, {
      method: 'POST',
      url: context.tokenEndpoint,
      now,
      ...(nonces === undefined ? {} : { nonceIsCurrent: (nonce: string) => nonces.isCurrent(nonce, now) }),
    });
  } catch (error) {
    if (!(error instanceof DpopProofError)) throw error;
    throw new ExchangeError(error.code === 'use_dpop_nonce' ? 'dpop_nonce_required' : 'dpop_proof_invalid', error.message, { public: true, cause: error });
  }
}

/**
 * The key the issued token is bound to, or none. A subject token that is itself bound (`cnf`)
 * keeps its binding only when this request proves possession of that very key (`cnf.jkt`
 * matching the proof); otherwise it is refused, never exchanged for a token without the binding,
 * which would turn a stolen bound token into a bearer one. A policy with `require_dpop` refuses
 * a request without a proof.
 */
export function bindingFor(
  proof: VerifiedDpopProof | undefined,
  subject: Readonly<Record<string, unknown>>,
  grant: { readonly requireDpop: boolean; readonly token: 'access' | 'github' | 'cloud' },
): { readonly jkt: string } | undefined {
  requireProofOfKey('subject', subject, proof);
  if (proof === undefined) {
    if (grant.requireDpop) throw new ExchangeError('dpop_required', 'the granting policy requires a DPoP proof (grant.require_dpop)');
    return undefined;
  }
  // Neither GitHub nor a cloud's STS checks cnf: a bound request must not leave with a token anyone can replay.
  if (grant.token === 'github') throw new ExchangeError('dpop_not_supported', 'a GitHub installation token cannot be bound to a DPoP key', { public: true });
  if (grant.token === 'cloud')
    throw new ExchangeError('dpop_not_supported', "a cloud token cannot be bound to a DPoP key: the cloud's STS does not check it", { public: true });
  return { jkt: proof.jkt };
}

/**
 * A subject or actor token bound to a key (`cnf`) is good only with a DPoP proof of that very key (`cnf.jkt`): without
 * one it is refused, never taken as a bearer token, which would turn a stolen bound token into one anyone can use.
 */
export function requireProofOfKey(token: 'subject' | 'actor', claims: Readonly<Record<string, unknown>>, proof: VerifiedDpopProof | undefined): void {
  if (claims['cnf'] === undefined) return;
  const reason = token === 'subject' ? 'subject_token_bound' : 'actor_token_bound';
  const jkt = boundThumbprint(claims['cnf']);
  if (jkt === undefined) throw new ExchangeError(reason, `the ${token} token is bound (cnf) by a method other than a DPoP key thumbprint`);
  if (proof?.jkt !== jkt) throw new ExchangeError(reason, `the ${token} token is bound to a key (cnf.jkt) this request has no DPoP proof of`);
}

function boundThumbprint(cnf: unknown): string | undefined {
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return undefined;
  const entries = Object.entries(cnf);
  const [only] = entries;
  return entries.length === 1 && only?.[0] === 'jkt' && typeof only[1] === 'string' && only[1] !== '' ? only[1] : undefined;
}

/**
 * Claims the proof's `jti` for as long as the proof is accepted, so a proof copied from the wire or a
 * log is refused at its second use (RFC 9449 §11.1). Called once the request is granted, as single use is.
 */
export async function claimProof(
  proof: VerifiedDpopProof,
  guard: ReplayGuard,
  context: { readonly auditEventId: string; readonly now: number },
): Promise<void> {
  const key = dpopProofKey(proof);
  let result;
  try {
    result = await guard.claim({ key, expiresAt: proof.acceptedUntil, auditEventId: context.auditEventId, now: context.now });
  } catch (cause) {
    throw new ExchangeError('replay_guard_unavailable', `the DPoP proof jti could not be checked: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
  if (!result.claimed) {
    throw new ExchangeError('dpop_proof_replayed', `the DPoP proof (jti ${proof.jti}) was already used, in audit event ${result.heldBy.auditEventId}`);
  }
}
