import type { CaseFold } from '../claims/case-fold.ts';

/**
 * What keyway knows about a kind of CI token issuer. Facts and sources are in
 * docs/ci/issuers.md and in the CI OIDC reference the project keeps; each preset lives in its own
 * file under `presets/`.
 */
export interface IssuerPreset {
  readonly name: string;
  /** The issuer URL of the public service, when there is one; `issuer: <name>` means it. */
  readonly url?: string;
  /** Where issuers of this kind live. An instance URL must have one of these shapes. */
  readonly shapes: readonly IssuerShape[];
  /** Signature algorithms this issuer uses. Never `none`, never HMAC. */
  readonly algorithms: readonly string[];
  /** Oldest token accepted, by `iat`, whatever its `exp` says. */
  readonly maxTokenAgeSeconds: number;
  /** Longest `exp − iat` accepted, when the issuer can mint tokens that outlive what they identify. */
  readonly maxTokenLifetimeSeconds?: number;
  /**
   * Claims that prove the token is a CI job token and not another kind the same keys sign.
   * Plain claim names, or JSON Pointers (`/kubernetes.io/namespace`) for nested ones.
   */
  readonly requiredClaims: readonly string[];
  /** Claims whose JSON type is known; a token that sends another type is refused. Keys as in `requiredClaims`. */
  readonly claimTypes: Readonly<Record<string, ClaimType>>;
  /**
   * Forms some claims always take. A token whose claim has another form is refused, and a
   * policy that pins a value of another form is a load error: it could never match.
   */
  readonly claimFormats: Readonly<Record<string, ClaimFormat>>;
  /**
   * Claims whose case the CI system itself ignores, and how far: `whole` for a name, `before-@`
   * for names joined to a git ref (`owner/repo/path@refs/heads/main`), whose ref stays exact.
   * Every other claim compares byte for byte. Keys as in `requiredClaims`.
   */
  readonly caseFolds: Readonly<Record<string, Exclude<CaseFold, 'exact'>>>;
  /**
   * Where a tenant chooses the claims its `sub` joins as `key:value` fields (GitHub's `include_claim_keys`): the keys whose
   * values join names to a git ref (`job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/main`). A `sub` pattern's
   * `@` stands for the `@` that ends their names (compileMatcher), as on those claims themselves.
   */
  readonly subjectRefKeys?: readonly string[];
  /** Claims recorded in every audit event, whether or not a policy looked at them. */
  readonly auditClaims: readonly string[];
  /**
   * True when one issuer of this kind serves many tenants, so policies must pin one. A
   * deployment may say otherwise (`IssuerShape.shared`); `TrustedIssuer.shared` is the answer
   * for a given issuer URL.
   */
  readonly shared: boolean;
  /** Claims that pin a tenant on a shared issuer. */
  readonly tenantClaims: readonly string[];
  /**
   * The `aud` every token of this kind carries, when the CI system does not let a job choose
   * one. Policies default to it, may name only it, and single use is forced: the same token
   * is accepted elsewhere (Azure DevOps tokens are meant for Entra ID).
   */
  readonly fixedAudience?: string;
  /** Every exchange of this issuer's tokens is single use, whatever a policy says. */
  readonly singleUse: boolean;
  /**
   * Every top-level claim this kind of token can carry, when the issuer documents them all: a
   * template naming any other claim is a load-time error (a typo), and a match line on one is
   * a lint warning. Absent for issuers whose claims are open-ended.
   */
  readonly claimNames?: { readonly names: readonly string[]; readonly prefixes?: readonly string[] };
  /** What `keyway policy check` knows about this kind of token. */
  readonly lint?: PresetLintFacts;
}

/** Facts about an issuer's claims that lint rules use. Keys are written like match keys. */
export interface PresetLintFacts {
  /** A mutable name claim → the immutable id claim to pin beside it. */
  readonly namesWithIds: Readonly<Record<string, string>>;
  /** Name claims whose first `/` segment is the owner or top-level group. */
  readonly ownerFirstNames: readonly string[];
  /**
   * Claim values that mark a run which may execute code nobody with write access reviewed.
   * With `sample`, the value is one of many such values (any fork's pull request ref), so the
   * advice is to pin the claim rather than to exclude the value.
   */
  readonly untrustedContexts: readonly { readonly claim: string; readonly value: string; readonly what: string; readonly sample?: boolean }[];
  /** Claims whoever edits the pipeline chooses freely → what to gate on instead. */
  readonly spoofable: Readonly<Record<string, string>>;
  /**
   * Matches a `sub` written in a name-only form, and the advice. With `idsBeside`, a policy that pins one of those id
   * claims too is left alone: the name then adds a check, never stands in for the id.
   */
  readonly nameBasedSubject?: { readonly pattern: RegExp; readonly advice: string; readonly idsBeside?: readonly string[] };
  /**
   * The audience the CI system gives a token when the job names none (or its own API's): every relying party the job
   * talks to that way receives it. `matches` reads the issuer URL too, since some of these audiences are built from it.
   */
  readonly defaultAudience?: { readonly matches: (audience: string, issuerUrl: string) => boolean; readonly what: string };
  /**
   * `sub` joins names this preset folds in their own claims (a repository, an environment), but compares exactly: a guard
   * written on it misses the same name in another case. `written` finds such names in a pattern's text; what they are,
   * a `sub` that slips past, and the claims to use instead.
   */
  readonly caselessNamesInSub?: { readonly written: RegExp; readonly names: string; readonly example: string; readonly instead: string };
  /**
   * Where a tenant chooses which claims its `sub` holds (GitHub's `include_claim_keys`) and the issuer signs them for any
   * account, the `key:` a `sub` must start with to name the caller's account (`repository_owner_id:`, `repo:`): one that
   * starts otherwise (`job_workflow_ref:…` of a public reusable workflow, `environment:production`) is every account's
   * to be signed, and what follows its first key is free text, so it pins no tenant.
   */
  readonly tenantSubjectKeys?: readonly string[];
  /** How a job asks for a token whose `aud` is keyway's URL: `circleci run oidc get --claims '{"aud":"<keyway URL>"}'`. */
  readonly askForKeyway?: string;
}

/** True when `audience` is `base` and one more path segment: `https://github.com/<owner>` under `https://github.com`. */
export const oneSegmentUnder = (audience: string, base: string): boolean =>
  audience.startsWith(`${base}/`) && /^[^/?#]+$/.test(audience.slice(base.length + 1));

/** Registered JWT claims any issuer may send. */
export const REGISTERED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'] as const;

/** True unless the preset documents every claim its tokens carry and this top-level claim is none of them. */
export function presetMaySend(preset: IssuerPreset, claim: string): boolean {
  const known = preset.claimNames;
  if (known === undefined) return true;
  return known.names.includes(claim) || (known.prefixes ?? []).some((prefix) => claim.startsWith(prefix));
}

/** The `claimNames` of an issuer that documents its claims: the registered ones and these. */
export const documentedClaims = (names: readonly string[], prefixes?: readonly string[]): NonNullable<IssuerPreset['claimNames']> => ({
  names: [...new Set([...REGISTERED_CLAIMS, ...names])],
  ...(prefixes === undefined ? {} : { prefixes }),
});

/** One deployment of a kind of issuer: the hosted service, an enterprise variant, a self-managed install. */
export interface IssuerShape {
  /** What people call this deployment: `github.com`, `GitHub Enterprise Server`. */
  readonly deployment: string;
  /** The host of a hosted service; absent for self-managed installs, which may live on any host. */
  readonly host?: RegExp;
  /**
   * The whole path of the issuer URL, `''` for a bare origin. A named group `tenant` marks the
   * part that names the tenant, which the token's `tenantClaim` must repeat.
   */
  readonly path: RegExp;
  readonly example: string;
  /** When the token names the tenant that the issuer path names: the claim that must agree with it. */
  readonly tenantClaim?: string;
  /** Overrides the preset's `shared` for this deployment (CircleCI's root issuer serves every org). */
  readonly shared?: boolean;
  /**
   * Why a shared deployment needs a tenant pin, completing "<issuer URL> …", when it is not that it
   * signs for every project it serves (a URL naming its tenant by a name that can change hands).
   */
  readonly sharedBecause?: string;
}

export type ClaimType = 'string' | 'string|null' | 'number' | 'boolean' | 'string[]' | 'object' | 'array';

export interface ClaimFormat {
  /** Tested against the claim's canonical text (`true` for a boolean true). */
  readonly pattern: RegExp;
  /** Completes "… is always": `a number in a string, like "734201"`. */
  readonly description: string;
}

/** Asymmetric JWS algorithms an operator may add to a preset (RFC 7518, RFC 8037). Never `none`, never HMAC. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

export const stringClaims = (names: readonly string[]): Record<string, ClaimType> => Object.fromEntries(names.map((name) => [name, 'string' as const]));

export const formats = (names: readonly string[], format: ClaimFormat): Record<string, ClaimFormat> => Object.fromEntries(names.map((name) => [name, format]));

export const NUMERIC_ID: ClaimFormat = { pattern: /^\d{1,20}$/, description: 'a number in a string, like "734201"' };
export const UUID_SOURCE = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
export const LOWERCASE_UUID: ClaimFormat = {
  pattern: new RegExp(`^${UUID_SOURCE}$`),
  description: 'a lower-case UUID, like "8d5a3a2c-3c16-4a3e-9d55-4c4d2f3e9b11"',
};
