/**
 * What keyway knows about a kind of CI token issuer. Facts and sources are in
 * the README's issuer table and in the CI OIDC reference the project keeps.
 */
export interface IssuerPreset {
  readonly name: string;
  /** The issuer URL of the public service, when there is one. */
  readonly url?: string;
  /** Signature algorithms this issuer uses. Never `none`, never HMAC. */
  readonly algorithms: readonly string[];
  /** Oldest token accepted, by `iat`, whatever its `exp` says. */
  readonly maxTokenAgeSeconds: number;
  /** Claims that prove the token is a CI job token and not another kind the same keys sign. */
  readonly requiredClaims: readonly string[];
  /** Claims whose JSON type is known; a token that sends another type is refused. */
  readonly claimTypes: Readonly<Record<string, ClaimType>>;
  /** Claims compared case-insensitively (names the CI system itself treats so). */
  readonly caseInsensitiveClaims: readonly string[];
  /** Claims recorded in every audit event, whether or not a policy looked at them. */
  readonly auditClaims: readonly string[];
  /** True when one issuer serves every customer of the CI system, so policies must pin a tenant. */
  readonly shared: boolean;
  /** Claims that pin a tenant on a shared issuer. */
  readonly tenantClaims: readonly string[];
  /**
   * Every claim this kind of token can carry, when the issuer documents them all: a template
   * naming any other claim is a load-time error (a typo), and a match line on one is a lint
   * warning. Absent for issuers whose claims are open-ended.
   */
  readonly claimNames?: { readonly names: readonly string[]; readonly prefixes?: readonly string[] };
  /** What `keyway policy check` knows about this kind of token. */
  readonly lint?: PresetLintFacts;
}

/** Facts about an issuer's claims that lint rules use. */
export interface PresetLintFacts {
  /** A mutable name claim → the immutable id claim to pin beside it. */
  readonly namesWithIds: Readonly<Record<string, string>>;
  /** Name claims whose first `/` segment is the owner or top-level group. */
  readonly ownerFirstNames: readonly string[];
  /** Claim values that mark a run which may execute code nobody with write access reviewed. */
  readonly untrustedContexts: readonly { readonly claim: string; readonly value: string; readonly what: string }[];
  /** Claims whoever edits the pipeline chooses freely → what to gate on instead. */
  readonly spoofable: Readonly<Record<string, string>>;
  /** Matches a `sub` written in a name-only form that has an immutable-id successor, and the advice. */
  readonly nameBasedSubject?: { readonly pattern: RegExp; readonly advice: string };
}

/** Registered JWT claims any issuer may send. */
const REGISTERED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'] as const;

/** True unless the preset documents every claim its tokens carry and this is none of them. */
export function presetMaySend(preset: IssuerPreset, claim: string): boolean {
  const known = preset.claimNames;
  if (known === undefined) return true;
  return known.names.includes(claim) || (known.prefixes ?? []).some((prefix) => claim.startsWith(prefix));
}

export type ClaimType = 'string' | 'number' | 'boolean' | 'string[]' | 'object' | 'array';

const stringClaims = (names: readonly string[]): Record<string, ClaimType> =>
  Object.fromEntries(names.map((name) => [name, 'string' as const]));

// https://docs.github.com/en/actions/reference/security/oidc — every claim is a string.
const GITHUB_CLAIMS = [
  'sub', 'jti', 'actor', 'actor_id', 'base_ref', 'head_ref', 'enterprise', 'enterprise_id', 'environment',
  'environment_node_id', 'event_name', 'job_workflow_ref', 'job_workflow_sha', 'ref', 'ref_type', 'ref_protected',
  'repository', 'repository_id', 'repository_owner', 'repository_owner_id', 'repository_visibility', 'run_id',
  'run_number', 'run_attempt', 'runner_environment', 'sha', 'workflow', 'workflow_ref', 'workflow_sha', 'check_run_id',
] as const;

const GITHUB_AUDIT_CLAIMS = [
  'repository', 'repository_id', 'repository_owner', 'repository_owner_id', 'ref', 'ref_type', 'ref_protected',
  'environment', 'event_name', 'workflow_ref', 'job_workflow_ref', 'sha', 'runner_environment', 'run_id', 'run_attempt', 'actor',
] as const;

const github: IssuerPreset = {
  name: 'github',
  url: 'https://token.actions.githubusercontent.com',
  algorithms: ['RS256'],
  // Tokens live 5 minutes; a job may ask for one at any time, so a fresh one is always at hand.
  maxTokenAgeSeconds: 10 * 60,
  requiredClaims: ['repository', 'repository_id', 'repository_owner_id', 'ref', 'event_name', 'run_id'],
  claimTypes: stringClaims(GITHUB_CLAIMS),
  caseInsensitiveClaims: ['repository', 'repository_owner', 'actor', 'enterprise', 'workflow_ref', 'job_workflow_ref'],
  auditClaims: GITHUB_AUDIT_CLAIMS,
  shared: true,
  tenantClaims: ['repository_owner_id', 'repository_id', 'enterprise_id', 'sub'],
  // repo_property_<name>: organisation custom properties copied into the token (2026).
  claimNames: { names: [...REGISTERED_CLAIMS, ...GITHUB_CLAIMS], prefixes: ['repo_property_'] },
  lint: {
    namesWithIds: { repository: 'repository_id', repository_owner: 'repository_owner_id', actor: 'actor_id', enterprise: 'enterprise_id' },
    ownerFirstNames: ['repository', 'repository_owner', 'workflow_ref', 'job_workflow_ref'],
    untrustedContexts: [
      { claim: 'event_name', value: 'pull_request', what: 'pull_request runs (the pull request author\'s code)' },
      { claim: 'event_name', value: 'pull_request_target', what: 'pull_request_target runs (base-repository context, often checking out a fork\'s code)' },
      { claim: 'event_name', value: 'workflow_run', what: 'workflow_run runs (can be triggered by a fork\'s pull request)' },
      { claim: 'runner_environment', value: 'self-hosted', what: 'self-hosted runners (outside GitHub\'s control)' },
      { claim: 'ref_protected', value: 'false', what: 'unprotected refs (anyone with write access can push them)' },
    ],
    spoofable: { workflow: 'workflow is the free-text name: of a workflow; gate on workflow_ref or job_workflow_ref' },
    nameBasedSubject: {
      pattern: /^repo:[^:@]*(:|$)/,
      advice:
        'GitHub gives repositories created, renamed or transferred after 2026-07-15 (and any that opt in) the immutable subject repo:OWNER@OWNER_ID/REPO@REPO_ID:…; this name-only pattern will not match them, and a re-registered name satisfies it. Pin repository_owner_id and repository_id, or match the immutable form',
    },
  },
};

// https://docs.gitlab.com/ci/secrets/id_token_authentication/ — strings, except these.
const GITLAB_STRING_CLAIMS = [
  'sub', 'jti', 'namespace_id', 'namespace_path', 'project_id', 'project_path', 'user_id', 'user_login', 'user_email',
  'user_access_level', 'pipeline_id', 'pipeline_source', 'job_id', 'ref', 'ref_type', 'ref_path', 'ref_protected',
  'environment', 'environment_protected', 'deployment_tier', 'environment_action', 'runner_environment', 'sha',
  'ci_config_ref_uri', 'ci_config_sha', 'project_visibility', 'job_project_id', 'job_project_path',
  'job_namespace_id', 'job_namespace_path',
] as const;

const gitlab: IssuerPreset = {
  name: 'gitlab',
  url: 'https://gitlab.com',
  algorithms: ['RS256'],
  // ID tokens are minted at job start and live for the job timeout.
  maxTokenAgeSeconds: 60 * 60,
  // The same keys sign GitLab's user login ID tokens; these claims exist only in CI job tokens.
  requiredClaims: ['project_id', 'pipeline_id', 'job_id', 'ref', 'ref_type'],
  claimTypes: {
    ...stringClaims(GITLAB_STRING_CLAIMS),
    runner_id: 'number',
    groups_direct: 'string[]',
    user_identities: 'array',
  },
  caseInsensitiveClaims: ['namespace_path', 'project_path', 'job_project_path', 'job_namespace_path', 'ci_config_ref_uri'],
  auditClaims: [
    'project_id', 'project_path', 'namespace_id', 'job_project_id', 'job_project_path', 'ref', 'ref_type', 'ref_protected',
    'environment', 'environment_protected', 'pipeline_source', 'pipeline_id', 'job_id', 'ci_config_ref_uri', 'sha',
    'runner_environment', 'user_login',
  ],
  // Each GitLab instance is one issuer for all of its projects; gitlab.com serves everyone.
  shared: true,
  tenantClaims: ['project_id', 'namespace_id', 'job_project_id', 'job_namespace_id', 'sub'],
  claimNames: {
    names: [
      ...REGISTERED_CLAIMS, ...GITLAB_STRING_CLAIMS, 'runner_id', 'groups_direct', 'user_identities', 'target_audience',
      // GitLab 18.x (MR !258245): the merge request's source project.
      'source_project_id', 'source_project_path', 'source_namespace_id', 'source_namespace_path',
      // Announced, not yet confirmed in a live token: accepted so a policy can use them when they ship.
      'pipeline_source_event', 'target_ref', 'target_ref_protected', 'job_source', 'job_policy_ref_uri',
    ],
  },
  lint: {
    namesWithIds: {
      project_path: 'project_id', namespace_path: 'namespace_id', job_project_path: 'job_project_id',
      job_namespace_path: 'job_namespace_id', user_login: 'user_id',
    },
    ownerFirstNames: ['project_path', 'namespace_path', 'job_project_path', 'job_namespace_path'],
    untrustedContexts: [
      { claim: 'ref_protected', value: 'false', what: 'unprotected refs (any developer can push them)' },
      { claim: 'runner_environment', value: 'self-hosted', what: 'self-hosted runners' },
      { claim: 'pipeline_source', value: 'merge_request_event', what: 'merge request pipelines (the author\'s code, possibly from a fork)' },
    ],
    spoofable: {},
  },
};

/**
 * The development issuer served by `KEYWAY_DEV=1` on loopback. It mints GitHub-shaped tokens,
 * so it shares GitHub's claim rules, but it has no public URL: it exists only when the Node
 * broker is started for development.
 */
const dev: IssuerPreset = {
  ...github,
  name: 'dev',
  url: undefined,
  shared: false,
};

/** Any other OIDC issuer, named by its exact URL. */
export const GENERIC_PRESET: IssuerPreset = {
  name: 'oidc',
  algorithms: ['RS256'],
  maxTokenAgeSeconds: 60 * 60,
  requiredClaims: [],
  claimTypes: { sub: 'string', jti: 'string' },
  caseInsensitiveClaims: [],
  auditClaims: [],
  shared: false,
  tenantClaims: [],
};

export const PRESETS: ReadonlyMap<string, IssuerPreset> = new Map([github, gitlab, dev].map((preset) => [preset.name, preset]));
