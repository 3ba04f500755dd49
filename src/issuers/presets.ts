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
