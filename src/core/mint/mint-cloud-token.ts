import { JOSE_JWT_CRYPTO, type JwtCrypto } from './jwt-crypto.ts';
import type { SigningKey } from './key-ring.ts';
import type { MintedAccessToken } from './mint-access-token.ts';
import { tokenId } from './token-id.ts';

/** The claim AWS reads session tags from. */
export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';

/** The claims every cloud token may carry besides a policy's own `grant.claims`: discovery's claims_supported. */
export const CLOUD_TOKEN_CLAIMS = ['iss', 'sub', 'aud', 'iat', 'nbf', 'exp', 'jti', AWS_TAGS_CLAIM];

/** What a cloud grant puts in the token (the policy's IssuedCloudGrant is one). */
export interface CloudTokenContent {
  readonly audience: string;
  /** AWS principal_tags: key → value; empty for other clouds. */
  readonly sessionTags: Readonly<Record<string, string>>;
  readonly transitiveTagKeys: readonly string[];
}

export interface CloudMintInput {
  /** The broker's issuer URL: what the cloud's OIDC provider is configured with. */
  readonly issuer: string;
  /** A key of the algorithm the cloud accepts (CLOUD_PROFILES). */
  readonly key: SigningKey;
  readonly subject: string;
  readonly ttlSeconds: number;
  readonly claims: Readonly<Record<string, string>>;
  readonly cloud: CloudTokenContent;
  /** Milliseconds since the epoch. */
  readonly now: number;
  readonly crypto?: JwtCrypto;
}

/**
 * The OIDC-shaped token a cloud's web-identity federation verifies: `typ: JWT` (not at+jwt,
 * which the clouds do not expect), one audience (the cloud's), integer times, a `jti` the audit
 * record names, and for AWS the session tags claim. No scope or client_id: the cloud reads none.
 */
export async function mintCloudToken(input: CloudMintInput): Promise<MintedAccessToken> {
  const iat = Math.floor(input.now / 1000);
  const exp = iat + input.ttlSeconds;
  const jti = tokenId(input.now);
  const { cloud } = input;
  const tags =
    Object.keys(cloud.sessionTags).length === 0
      ? {}
      : {
          [AWS_TAGS_CLAIM]: {
            principal_tags: Object.fromEntries(Object.entries(cloud.sessionTags).map(([key, value]) => [key, [value]])),
            ...(cloud.transitiveTagKeys.length === 0 ? {} : { transitive_tag_keys: [...cloud.transitiveTagKeys] }),
          },
        };
  const payload = { ...input.claims, ...tags, iss: input.issuer, sub: input.subject, aud: cloud.audience, iat, nbf: iat, exp, jti };
  const token = await (input.crypto ?? JOSE_JWT_CRYPTO).sign({ alg: input.key.alg, typ: 'JWT', kid: input.key.kid }, payload, input.key);
  return { token, jti, issuedAt: iat, expiresAt: exp };
}
