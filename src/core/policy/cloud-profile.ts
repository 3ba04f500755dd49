/**
 * What each cloud's web-identity verification demands of the token keyway mints for it
 * (`grant.cloud`), in one place: the audience, the signing algorithm, the limits on `sub` and on
 * AWS session tags. Sources: docs/cloud/aws.md, docs/cloud/gcp.md, docs/cloud/azure.md.
 */

export const CLOUD_PROVIDERS = ['aws', 'gcp', 'azure'] as const;
export type CloudProvider = (typeof CLOUD_PROVIDERS)[number];

/** The signing algorithms keyway mints with: ES256 where the cloud accepts it, RS256 where only RSA will do (Entra). */
export type CloudSigningAlgorithm = 'ES256' | 'RS256';

export interface CloudProfile {
  readonly alg: CloudSigningAlgorithm;
  /** Longest `sub` the cloud takes, in UTF-8 bytes. */
  readonly maxSubjectBytes: number;
}

export const CLOUD_PROFILES: Readonly<Record<CloudProvider, CloudProfile>> = {
  // AssumeRoleWithWebIdentity: RS/ES 256-512; SubjectFromWebIdentityToken is 6-255 characters.
  aws: { alg: 'ES256', maxSubjectBytes: 255 },
  // Workload Identity Federation: RS256 and ES256; google.subject is at most 127 bytes.
  gcp: { alg: 'ES256', maxSubjectBytes: 127 },
  // Entra federated identity credentials: RS256 only; subject at most 600 characters.
  azure: { alg: 'RS256', maxSubjectBytes: 600 },
};

/** The token only has to reach the cloud's STS; Google's own ceiling (exp − iat) is 24 hours. */
export const CLOUD_MAX_TTL_SECONDS = 60 * 60;

export const AWS_AUDIENCE = 'sts.amazonaws.com';
export const AZURE_AUDIENCE = 'api://AzureADTokenExchange';
/** Entra's token exchange audiences: the public cloud's, then the national clouds' (US Government, China, US Nat, US Sec). */
const ENTRA_AUDIENCES = new Set(['', 'USGov', 'China', 'USNat', 'USSec'].map((cloud) => `${AZURE_AUDIENCE}${cloud}`.toLowerCase()));
/** The default audience a Workload Identity provider accepts: https://iam.googleapis.com/ + its resource name. */
export const gcpAudience = (workloadIdentityProvider: string): string => `https://iam.googleapis.com/${workloadIdentityProvider}`;

/**
 * The cloud whose STS takes a token for this audience, or undefined. A keyway access token is
 * refused one: AWS and Google check no `typ`, so it would pass as a cloud token without
 * grant.cloud's limits and sub-collision lint. Hosts are compared without case, as the clouds do.
 * Wider than what grant.cloud mints for: AWS China's `sts.amazonaws.com.cn`, Entra's national
 * clouds (`api://AzureADTokenExchangeUSGov`, `…China`, `…USNat`, `…USSec`), a Google audience with
 * any scheme or port. Never complete: an AWS OIDC provider's client ids and a Google provider's
 * allowed audiences are whatever its operator lists.
 */
export function cloudOfAudience(audience: string): CloudProvider | undefined {
  const lower = audience.toLowerCase();
  if (lower === AWS_AUDIENCE || lower === `${AWS_AUDIENCE}.cn`) return 'aws';
  if (ENTRA_AUDIENCES.has(lower)) return 'azure';
  if (/^(?:[a-z][a-z0-9+.-]*:)?\/\/iam\.googleapis\.com\.?(?::\d*)?(?:[/?#]|$)/.test(lower)) return 'gcp';
  return undefined;
}

/** AWS session tag limits (AssumeRoleWithWebIdentity, IAM session tags). */
export const AWS_TAG_LIMITS = { count: 50, keyChars: 128, valueChars: 256 } as const;
/** Letters, digits, spaces and `_ . : / = + - @`, in any script. */
export const AWS_TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** Why an AWS session tag key breaks AWS's rules, or undefined. */
export function awsTagKeyProblem(key: string): string | undefined {
  if (key.length < 1 || key.length > AWS_TAG_LIMITS.keyChars) return `a session tag key is 1 to ${AWS_TAG_LIMITS.keyChars} characters`;
  if (!AWS_TAG_TEXT.test(key)) return 'a session tag key holds only letters, digits, spaces and _ . : / = + - @';
  if (key.toLowerCase().startsWith('aws:')) return 'a session tag key may not begin with aws:';
  return undefined;
}

/** Why an AWS session tag value breaks AWS's rules, or undefined. Never truncated: a value that does not fit is refused. */
export function awsTagValueProblem(value: string): string | undefined {
  if (value.length > AWS_TAG_LIMITS.valueChars) return `is ${value.length} characters; AWS takes at most ${AWS_TAG_LIMITS.valueChars}`;
  if (!AWS_TAG_TEXT.test(value)) return 'holds a character AWS does not allow in a session tag (only letters, digits, spaces and _ . : / = + - @)';
  return undefined;
}

export const AWS_ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
export const GCP_WORKLOAD_IDENTITY_PROVIDER = /^projects\/\d{1,20}\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{4,32}\/providers\/[a-z0-9-]{4,32}$/;
export const GCP_SERVICE_ACCOUNT = /^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.-]{0,200}\.gserviceaccount\.com$/;
export const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
