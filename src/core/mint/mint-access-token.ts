import { tokenId } from './token-id.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from './jwt-crypto.ts';
import type { SigningKey } from './key-ring.ts';

/** What a policy granted, as far as the token carries it (the policy's IssuedGrant is one). */
export interface AccessTokenGrant {
  /** The granting policy: its id is the token's `client_id`. */
  readonly policy: { readonly id: string };
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly subject: string;
  readonly claims: Readonly<Record<string, string>>;
}

export interface MintInput {
  /** The broker's issuer URL. */
  readonly issuer: string;
  readonly key: SigningKey;
  readonly grant: AccessTokenGrant;
  /** Issuer and subject of the CI token this one was exchanged for. */
  readonly source: { readonly iss: string; readonly sub: string };
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** What signs: jose on WebCrypto unless the runtime has faster (Node: node:crypto). */
  readonly crypto?: JwtCrypto;
  /** RFC 9449 §6: the key the token is bound to, by its RFC 7638 thumbprint (`cnf.jkt`). */
  readonly confirmation?: { readonly jkt: string };
  /** RFC 8693 §4.1: who acts for the subject, prior actors nested inside. */
  readonly actor?: ActorClaim;
}

// A type, not an interface: it is also a claim set that match_actor reads (a Record).
export type ActorClaim = {
  readonly iss?: string;
  readonly sub: string;
  readonly act?: ActorClaim;
};

export interface MintedAccessToken {
  readonly token: string;
  readonly jti: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/**
 * An RFC 9068 JWT access token: `typ: at+jwt`, the seven required claims, the granted scope,
 * the policy's templated claims, and the source identity.
 */
export async function mintAccessToken(input: MintInput): Promise<MintedAccessToken> {
  const { grant } = input;
  const iat = Math.floor(input.now / 1000);
  const exp = iat + grant.ttlSeconds;
  const jti = tokenId(input.now);
  const audience = grant.audiences.length === 1 ? (grant.audiences[0] as string) : [...grant.audiences];
  const payload = {
    ...grant.claims,
    client_id: grant.policy.id,
    scope: grant.scopes.join(' '),
    src_iss: input.source.iss,
    src_sub: input.source.sub,
    iss: input.issuer,
    sub: grant.subject,
    aud: audience,
    iat,
    nbf: iat,
    exp,
    jti,
    ...(input.confirmation === undefined ? {} : { cnf: { jkt: input.confirmation.jkt } }),
    ...(input.actor === undefined ? {} : { act: input.actor }),
  };
  const token = await (input.crypto ?? JOSE_JWT_CRYPTO).sign({ alg: input.key.alg, typ: 'at+jwt', kid: input.key.kid }, payload, input.key);
  return { token, jti, issuedAt: iat, expiresAt: exp };
}
