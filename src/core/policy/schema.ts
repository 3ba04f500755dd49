import * as v from 'valibot';
import { ASYMMETRIC_ALGORITHMS } from '../verify/issuer-preset.ts';
import { DIAGNOSTICS } from '../verify/trusted-issuer.ts';
import { PRESETS } from '../verify/presets.ts';
import { ORGANIZATION_PERMISSIONS, PERMISSION_LEVELS, REPOSITORY_PERMISSIONS } from './github-permissions.ts';
import { LINT_RULE_IDS, LINT_RULES } from './lint/lint-rules.ts';
import { CHORE_NAMES } from './proxy-chores.ts';
import { PROXY_METHODS } from './proxy-rule.ts';
import { AWS_ROLE_ARN, AWS_TAG_LIMITS, awsTagKeyProblem, GCP_SERVICE_ACCOUNT, GCP_WORKLOAD_IDENTITY_PROVIDER, UUID } from './cloud-profile.ts';
import { PROXY_UPSTREAM_NAME } from './proxy-upstream-name.ts';

/**
 * The trust policy file format, version 1. The loader validates with this schema and the
 * published JSON Schema is generated from it, so the two cannot drift apart. Every object
 * is strict: an unknown field is an error, because a typo must never silently widen a policy.
 */

/** An upstream's name, as it appears in /proxy/{upstream}/…. */
export const DURATION_PATTERN = /^[1-9]\d{0,5}(s|m|h)$/;
export const POLICY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
// RFC 6749 §3.3 scope-token
export const SCOPE_TOKEN_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

const MATCHER_HELP = 'a matcher is a value, a list of matchers, or one of { glob }, { regex }, { not }, { exists }';

/** Names valibot's record leaves out of what it reads (they could reach an object's prototype): written, they would vanish. */
const UNREAD_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

/**
 * A map of names to values. valibot's record alone would take a list as index → entry; a map must be written as a map. And
 * it drops a key of UNREAD_KEYS without a word, so a `match` line under one would never be checked and the policy would
 * match more than it says: such a key is refused.
 */
export function mapOf<TValue extends v.GenericSchema>(key: v.GenericSchema<string>, value: TValue) {
  return v.pipe(
    v.custom<Record<string, unknown>>(
      (input) => typeof input === 'object' && input !== null && !Array.isArray(input),
      'expected a map (name: value), not a list',
    ),
    v.check(
      (input) => !UNREAD_KEYS.some((name) => Object.hasOwn(input, name)),
      'a map cannot hold a key named __proto__, constructor or prototype, which would not be read',
    ),
    v.record(key, value),
  );
}

const Scalar = v.union([v.string(), v.number(), v.boolean()]);

export type Matcher =
  | string
  | number
  | boolean
  | readonly Matcher[]
  | { readonly glob: string }
  | { readonly regex: string }
  | { readonly not: Matcher }
  | { readonly exists: boolean };

export const MatcherSchema: v.GenericSchema<Matcher> = v.pipe(
  v.union(
    [
      v.pipe(Scalar, v.description('the claim equals it, compared as text (true matches "true")')),
      v.pipe(v.array(v.lazy(() => MatcherSchema)), v.minLength(1, 'a list matcher needs at least one entry'), v.description('any entry matches')),
      v.strictObject({
        glob: v.pipe(
          v.string(),
          v.minLength(1),
          v.maxLength(512),
          v.description('whole value; * is any run without /, ** any run, ? one character other than /'),
        ),
      }),
      v.strictObject({
        regex: v.pipe(
          v.string(),
          v.minLength(1),
          v.maxLength(512),
          v.description('whole value (anchored); no backreferences, lookaround, or nesting and runs of repetitions that backtrack catastrophically'),
        ),
      }),
      v.strictObject({
        not: v.pipe(
          v.lazy(() => MatcherSchema),
          v.description('the claim exists and this matcher does not match'),
        ),
      }),
      v.strictObject({ exists: v.pipe(v.boolean(), v.description('presence only; null counts as absent')) }),
    ],
    MATCHER_HELP,
  ),
  v.description(MATCHER_HELP),
);

const Duration = v.pipe(v.string(), v.regex(DURATION_PATTERN, 'a duration is a number and a unit: 90s, 10m, 1h'));

const DIAGNOSTICS_HELP = `diagnostics is ${DIAGNOSTICS.join(' or ')}`;

const Audience = v.pipe(v.string(), v.minLength(1), v.maxLength(2048));

export const IssuerSchema = v.pipe(
  v.union(
    [
      v.pipe(v.string(), v.minLength(1)),
      v.strictObject({
        kind: v.pipe(v.string(), v.description(`the preset whose rules apply: ${[...PRESETS.keys()].filter((name) => name !== 'dev').join(', ')}`)),
        url: v.optional(
          v.pipe(v.string(), v.description("the instance or tenant issuer URL, exactly as its tokens write iss; default: the preset's public issuer")),
        ),
        // Overrides for what operators legitimately need; every policy naming the issuer must agree on them.
        max_token_age: v.optional(v.pipe(Duration, v.description("oldest token accepted, by iat, instead of the preset's limit; at most 24h"))),
        extra_algorithms: v.optional(
          v.pipe(
            v.array(v.picklist(ASYMMETRIC_ALGORITHMS)),
            v.minLength(1),
            v.description("signature algorithms accepted besides the preset's own; never none or HMAC"),
          ),
        ),
        diagnostics: v.optional(
          v.pipe(
            v.picklist(DIAGNOSTICS, DIAGNOSTICS_HELP),
            v.description(
              'what a refused pipeline learns for every policy of this issuer: none (default), or claim-names (the claim names that failed for the closest allow policy, never values or patterns, and the deny guardrails that fired)',
            ),
          ),
        ),
      }),
    ],
    `issuer is a preset name, an exact https URL, or { kind, url, max_token_age, extra_algorithms } with extra algorithms from ${ASYMMETRIC_ALGORITHMS.join(', ')} (never none or HMAC)`,
  ),
  v.description(
    'a preset name (github, gitlab, buildkite, google, terraform, dev…), an exact issuer URL, or { kind, url } for an instance or tenant, with optional overrides',
  ),
);

// GitHub's rules for logins and repository names.
export const GITHUB_OWNER_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
export const GITHUB_REPOSITORY_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/)?[A-Za-z0-9._-]{1,100}$/;
/** A GitHub account's numeric id, as policies write it (`owner_id`) and GitHub's tokens carry it. */
export const GITHUB_ACCOUNT_ID_PATTERN = /^[1-9]\d{0,19}$/;

/** `owner_id`: an account pinned by its id, since a login can be renamed and registered again. */
const GitHubAccountId = (description: string) =>
  v.pipe(v.string(), v.regex(GITHUB_ACCOUNT_ID_PATTERN, 'owner_id is the numeric id of the GitHub account, as a string'), v.description(description));

export const GitHubGrantSchema = v.pipe(
  v.strictObject({
    owner: v.optional(
      v.pipe(
        v.string(),
        v.regex(GITHUB_OWNER_PATTERN, 'owner is a GitHub organization or user login'),
        v.description('the account the repositories belong to; default: the owner the repositories name'),
      ),
    ),
    repositories: v.pipe(
      v.array(v.pipe(v.string(), v.regex(GITHUB_REPOSITORY_PATTERN, 'a repository is name or owner/name'))),
      v.minLength(1, 'grant.github.repositories needs at least one repository'),
      v.maxLength(500, 'an installation token covers at most 500 repositories'),
      v.description('repositories the token may cover (owner/name, or name with owner); the caller may ask for a subset'),
    ),
    permissions: v.pipe(
      mapOf(
        v.pipe(
          v.string(),
          v.check((name) => Object.hasOwn(REPOSITORY_PERMISSIONS, name), `a permission is one of ${Object.keys(REPOSITORY_PERMISSIONS).join(', ')}`),
        ),
        v.picklist(PERMISSION_LEVELS, `a permission level is ${PERMISSION_LEVELS.join(', ')}`),
      ),
      v.minEntries(1, 'grant.github.permissions needs at least one permission'),
      v.description('permission → read | write (admin for repository_projects); the caller may ask for less'),
    ),
    owner_id: v.optional(GitHubAccountId("the owner's numeric account id: required with organization_permissions; the installation's account must have it")),
    organization_permissions: v.optional(
      v.pipe(
        mapOf(
          v.pipe(
            v.string(),
            v.check(
              (name) => Object.hasOwn(ORGANIZATION_PERMISSIONS, name),
              `an organization permission is one of ${Object.keys(ORGANIZATION_PERMISSIONS).join(', ')}`,
            ),
          ),
          v.picklist(PERMISSION_LEVELS, `a permission level is ${PERMISSION_LEVELS.join(', ')}`),
        ),
        v.minEntries(1, 'grant.github.organization_permissions, when present, needs at least one permission'),
        v.description(
          "organization permission → level, for the owner (an organization) pinned by owner_id; central policies only, and only those on the operator's allowlist (KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS)",
        ),
      ),
    ),
  }),
  v.description(
    'a GitHub App installation token for these repositories with these permissions (requested_token_type urn:keyway:params:oauth:token-type:github-installation-token)',
  ),
);

const AwsTagKey = v.pipe(
  v.string(),
  v.check(
    (key) => awsTagKeyProblem(key) === undefined,
    (issue) => `session tag key ${JSON.stringify(issue.input)}: ${awsTagKeyProblem(String(issue.input))}`,
  ),
);

/** `grant.cloud`: a token for one cloud's web-identity federation (docs/cloud/). */
export const CloudGrantSchema = v.pipe(
  v.variant(
    'provider',
    [
      v.strictObject({
        provider: v.literal('aws'),
        roles: v.pipe(
          v.array(v.pipe(v.string(), v.regex(AWS_ROLE_ARN, 'a role is an IAM role ARN: arn:aws:iam::123456789012:role/name'))),
          v.minLength(1, 'grant.cloud.roles needs at least one role ARN'),
          v.maxLength(100),
          v.description('IAM role ARNs the caller may name (audience); the first is the default'),
        ),
        session_tags: v.optional(
          v.pipe(
            mapOf(AwsTagKey, v.pipe(v.string(), v.minLength(1), v.maxLength(1024))),
            v.maxEntries(AWS_TAG_LIMITS.count, `AWS takes at most ${AWS_TAG_LIMITS.count} session tags`),
            v.description('session tag key → template over the verified claims (principal_tags); a value AWS would refuse is refused, never cut'),
          ),
        ),
        transitive_tag_keys: v.optional(
          v.pipe(v.array(AwsTagKey), v.minLength(1), v.description('session tag keys that stay on the session through role chaining')),
        ),
      }),
      v.strictObject({
        provider: v.literal('gcp'),
        workload_identity_provider: v.pipe(
          v.string(),
          v.regex(GCP_WORKLOAD_IDENTITY_PROVIDER, 'projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER'),
          v.description("the Workload Identity provider's resource name; the token's audience is https://iam.googleapis.com/ + it"),
        ),
        service_accounts: v.optional(
          v.pipe(
            v.array(v.pipe(v.string(), v.regex(GCP_SERVICE_ACCOUNT, 'a service account is its email, NAME@PROJECT.iam.gserviceaccount.com'))),
            v.minLength(1),
            v.maxLength(100),
            v.description('service accounts the caller may impersonate (audience); without one the caller uses the federated identity directly'),
          ),
        ),
      }),
      v.strictObject({
        provider: v.literal('azure'),
        tenant_id: v.pipe(v.string(), v.regex(UUID, 'tenant_id is the directory (tenant) id, a GUID')),
        client_ids: v.pipe(
          v.array(v.pipe(v.string(), v.regex(UUID, 'a client id is the application (client) id, a GUID'))),
          v.minLength(1, 'grant.cloud.client_ids needs at least one application (client) id'),
          v.maxLength(100),
          v.description('application or managed identity client ids the caller may name (audience); the first is the default'),
        ),
      }),
    ],
    'grant.cloud.provider is aws, gcp or azure',
  ),
  v.description(
    "a token for a cloud's web-identity federation (requested_token_type urn:ietf:params:oauth:token-type:id_token): typ JWT, the cloud's audience, sub from grant.subject",
  ),
);

const ProxyPermissions = mapOf(
  v.pipe(
    v.string(),
    v.check((name) => Object.hasOwn(REPOSITORY_PERMISSIONS, name), `a permission is one of ${Object.keys(REPOSITORY_PERMISSIONS).join(', ')}`),
  ),
  v.picklist(PERMISSION_LEVELS, `a permission level is ${PERMISSION_LEVELS.join(', ')}`),
);

/** `grant.proxy`: the requests keyway makes for the job through an operator-declared upstream (docs/proxy.md). */
export const ProxyGrantSchema = v.pipe(
  v.strictObject({
    upstream: v.pipe(
      v.string(),
      v.regex(PROXY_UPSTREAM_NAME, 'an upstream is named with a-z, 0-9 and -'),
      v.description('an upstream declared by the operator'),
    ),
    allow: v.pipe(
      v.array(
        v.union(
          [
            v.strictObject({
              method: v.pipe(v.picklist(PROXY_METHODS, `a method is one of ${PROXY_METHODS.join(', ')}`), v.description('matched exactly')),
              path: v.pipe(
                v.string(),
                v.minLength(1),
                v.maxLength(1024),
                v.description('a path from /, templated from the claims ({repository}); * is one segment, ** the rest'),
              ),
              permissions: v.optional(
                v.pipe(ProxyPermissions, v.description('GitHub App upstream: the installation token permissions this request needs; default metadata: read')),
              ),
              owner_id: v.optional(
                GitHubAccountId(
                  "GitHub App upstream: the numeric id of the account the path's owner must be (a login can be renamed and registered again); needed for a repository of another owner than the caller's",
                ),
              ),
            }),
            v.strictObject({
              chore: v.pipe(v.picklist(CHORE_NAMES, `a chore is one of ${CHORE_NAMES.join(', ')}`), v.description('a named GitHub CI chore')),
            }),
          ],
          'an allow entry is { method, path } or { chore }',
        ),
      ),
      v.minLength(1, 'grant.proxy.allow needs at least one entry'),
      v.maxLength(100),
    ),
  }),
  v.description('requests keyway makes for the caller through /proxy/{upstream}/…, each allowed by method and normalised path'),
);

export const GrantSchema = v.pipe(
  v.strictObject({
    audience: v.optional(
      v.pipe(
        v.union([Audience, v.pipe(v.array(Audience), v.minLength(1))], 'grant.audience is a string or a non-empty list of strings'),
        v.description('aud of the issued token; with a list the caller chooses, and the first is the default. Optional only beside github'),
      ),
    ),
    github: v.optional(GitHubGrantSchema),
    cloud: v.optional(CloudGrantSchema),
    proxy: v.optional(ProxyGrantSchema),
    scopes: v.optional(
      v.pipe(
        v.array(v.pipe(v.string(), v.regex(SCOPE_TOKEN_PATTERN, 'a scope is one RFC 6749 scope-token, no spaces'))),
        v.description('scopes the caller may ask for (a subset); all of them by default'),
      ),
    ),
    ttl: v.optional(v.pipe(Duration, v.description('lifetime of the issued token: 90s, 10m, 1h; default 5m'))),
    subject: v.optional(
      v.pipe(v.string(), v.minLength(1), v.maxLength(1024), v.description('template for the issued sub, e.g. "github:{repository}"; default <issuer>#<sub>')),
    ),
    claims: v.optional(
      v.pipe(
        mapOf(v.pipe(v.string(), v.minLength(1)), v.pipe(v.string(), v.maxLength(1024))),
        v.description('extra claims of the issued token, each a template over the verified claims'),
      ),
    ),
    require_dpop: v.optional(
      v.pipe(
        v.boolean(),
        v.description('true: the request must carry a DPoP proof (RFC 9449) and the issued token is bound to its key (cnf.jkt); not with github'),
      ),
    ),
  }),
  v.check(
    (grant) => grant.audience !== undefined || grant.github !== undefined || grant.cloud !== undefined || grant.proxy !== undefined,
    'a grant needs an audience, a github token, a cloud token, proxied requests, or more than one',
  ),
  v.check(
    (grant) => grant.require_dpop !== true || (grant.github === undefined && grant.cloud === undefined),
    'grant.require_dpop cannot go with grant.github or grant.cloud: a GitHub or cloud token cannot be bound to a key',
  ),
  v.description('what an allow policy issues; absent on deny policies'),
);

const Reason = v.pipe(v.string(), v.regex(/\S/, 'say why the rule does not apply here'), v.maxLength(1024));

/** Lint rules a policy may silence, each with the reason it is fine here. Never the unused-ignore check itself. */
export const LintSchema = v.pipe(
  v.strictObject({
    ignore: v.optional(
      v.pipe(
        v.strictObject(
          Object.fromEntries(
            LINT_RULE_IDS.filter((id) => id !== 'unused-ignore').map((id) => [
              id,
              v.optional(v.pipe(Reason, v.description(`why ${id} does not apply: ${LINT_RULES[id].why}`))),
            ]),
          ) as Record<string, v.OptionalSchema<v.GenericSchema<string>, undefined>>,
        ),
        v.description('lint rule id → why it does not apply to this policy'),
      ),
    ),
  }),
  v.description('settings for keyway policy check'),
);

export const PolicySchema = v.pipe(
  v.strictObject({
    version: v.literal(1, 'version must be 1'),
    id: v.optional(
      v.pipe(
        v.string(),
        v.regex(POLICY_ID_PATTERN, 'an id is letters, digits, . _ / -, at most 128 characters'),
        v.description('default: the path under policies/ without extension'),
      ),
    ),
    description: v.optional(v.pipe(v.string(), v.description('for people: shown in explain output'))),
    effect: v.optional(v.pipe(v.picklist(['allow', 'deny'], 'effect is allow or deny'), v.description('a matching deny policy beats every allow')), 'allow'),
    mode: v.optional(
      v.pipe(
        v.picklist(['enforce', 'audit'], 'mode is enforce or audit'),
        v.description('audit: evaluated and recorded as would grant / would deny, never enforced'),
      ),
      'enforce',
    ),
    disabled: v.optional(v.pipe(v.boolean(), v.description('true takes the policy out of every decision (a kill switch)')), false),
    issuer: IssuerSchema,
    subject_audience: v.optional(
      v.pipe(
        Audience,
        v.description(
          "the aud the CI token must carry; default: the broker's own issuer URL (or the issuer's fixed audience). A deny policy without it holds for every audience",
        ),
      ),
    ),
    single_use: v.optional(
      v.pipe(
        v.boolean(),
        v.description(
          'true: each subject token is good for one granted exchange; a replay is refused until it expires. Forced by presets whose tokens are accepted elsewhere (azure-devops)',
        ),
      ),
    ),
    match_actor: v.optional(
      v.pipe(
        mapOf(v.pipe(v.string(), v.minLength(1)), MatcherSchema),
        v.minEntries(1, 'match_actor needs at least one claim of the actor token'),
        v.description(
          'RFC 8693 delegation: claim → matcher over the verified actor_token (its iss included), or at /proxy the actor a keyway token names in act (iss, sub). An allow policy without it grants no request that carries an actor_token',
        ),
      ),
    ),
    match: v.pipe(
      mapOf(v.pipe(v.string(), v.minLength(1)), MatcherSchema),
      v.minEntries(1, 'match needs at least one claim: a policy never matches every token'),
      v.description('claim name or /json/pointer → matcher; every line must hold'),
    ),
    grant: v.optional(GrantSchema),
    diagnostics: v.optional(
      v.pipe(
        v.picklist(DIAGNOSTICS, DIAGNOSTICS_HELP),
        v.description("allow policies: what a refused pipeline learns when this is its closest allow policy; default: the issuer's diagnostics"),
      ),
    ),
    lint: v.optional(LintSchema),
  }),
  v.check((policy) => policy.effect !== 'allow' || policy.grant !== undefined, 'an allow policy needs a grant'),
  v.check((policy) => policy.effect !== 'deny' || policy.grant === undefined, 'a deny policy has no grant'),
  v.title('keyway trust policy'),
);

export type PolicyDocument = v.InferOutput<typeof PolicySchema>;
export type GrantDocument = v.InferOutput<typeof GrantSchema>;
export type GitHubGrantDocument = v.InferOutput<typeof GitHubGrantSchema>;
export type ProxyGrantDocument = v.InferOutput<typeof ProxyGrantSchema>;
export type CloudGrantDocument = v.InferOutput<typeof CloudGrantSchema>;
