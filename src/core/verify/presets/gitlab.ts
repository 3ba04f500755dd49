import { documentedClaims, formats, NUMERIC_ID, stringClaims, type IssuerPreset } from '../issuer-preset.ts';

// https://docs.gitlab.com/ci/secrets/id_token_authentication/ — strings, except those typed below.
const GITLAB_STRING_CLAIMS = [
  'sub',
  'jti',
  'namespace_id',
  'namespace_path',
  'project_id',
  'project_path',
  'user_id',
  'user_login',
  'user_email',
  'user_access_level',
  'pipeline_id',
  'pipeline_source',
  'job_id',
  'ref',
  'ref_type',
  'ref_path',
  'ref_protected',
  'environment',
  'environment_protected',
  'deployment_tier',
  'environment_action',
  'runner_environment',
  'sha',
  'project_visibility',
  'job_project_id',
  'job_project_path',
  'job_namespace_id',
  'job_namespace_path',
] as const;

export const gitlab: IssuerPreset = {
  name: 'gitlab',
  url: 'https://gitlab.com',
  shapes: [
    { deployment: 'gitlab.com', host: /^gitlab\.com$/, path: /^$/, example: 'https://gitlab.com' },
    // The instance URL, which may have a relative root (https://example.com/gitlab).
    { deployment: 'GitLab self-managed', path: /^(\/[^/]+)*$/, example: 'https://gitlab.example.com' },
  ],
  algorithms: ['RS256'],
  // ID tokens are minted at job start and live for the job timeout.
  maxTokenAgeSeconds: 60 * 60,
  // The same keys sign GitLab's user login ID tokens; these claims exist only in CI job tokens.
  requiredClaims: ['project_id', 'pipeline_id', 'job_id', 'ref', 'ref_type'],
  claimTypes: {
    ...stringClaims(GITLAB_STRING_CLAIMS),
    // Null when the pipeline configuration comes from another project or a URL.
    ci_config_ref_uri: 'string|null',
    ci_config_sha: 'string|null',
    runner_id: 'number',
    groups_direct: 'string[]',
    user_identities: 'array',
  },
  claimFormats: formats(['project_id', 'namespace_id', 'job_project_id', 'job_namespace_id', 'pipeline_id', 'job_id', 'user_id'], NUMERIC_ID),
  // Paths fold; the ref after the @ of ci_config_ref_uri and job_policy_ref_uri (the same shape, announced) is a git ref,
  // and git refs are case-sensitive.
  caseFolds: {
    namespace_path: 'whole',
    project_path: 'whole',
    job_project_path: 'whole',
    job_namespace_path: 'whole',
    ci_config_ref_uri: 'before-@',
    job_policy_ref_uri: 'before-@',
  },
  auditClaims: [
    'project_id',
    'project_path',
    'namespace_id',
    'job_project_id',
    'job_project_path',
    'ref',
    'ref_type',
    'ref_protected',
    'environment',
    'environment_protected',
    'pipeline_source',
    'pipeline_id',
    'job_id',
    'ci_config_ref_uri',
    'sha',
    'runner_environment',
    'user_login',
  ],
  // Each GitLab instance is one issuer for all of its projects; gitlab.com serves everyone.
  shared: true,
  tenantClaims: ['project_id', 'namespace_id', 'job_project_id', 'job_namespace_id', 'sub'],
  singleUse: false,
  claimNames: documentedClaims([
    ...GITLAB_STRING_CLAIMS,
    'ci_config_ref_uri',
    'ci_config_sha',
    'runner_id',
    'groups_direct',
    'user_identities',
    'target_audience',
    // GitLab 18.x (MR !258245): the merge request's source project.
    'source_project_id',
    'source_project_path',
    'source_namespace_id',
    'source_namespace_path',
    // Announced, not yet confirmed in a live token: accepted so a policy can use them when they ship.
    'pipeline_source_event',
    'target_ref',
    'target_ref_protected',
    'job_source',
    'job_policy_ref_uri',
  ]),
  lint: {
    namesWithIds: {
      project_path: 'project_id',
      namespace_path: 'namespace_id',
      job_project_path: 'job_project_id',
      job_namespace_path: 'job_namespace_id',
      user_login: 'user_id',
    },
    ownerFirstNames: ['project_path', 'namespace_path', 'job_project_path', 'job_namespace_path'],
    untrustedContexts: [
      { claim: 'ref_protected', value: 'false', what: 'unprotected refs (any developer can push them)' },
      { claim: 'runner_environment', value: 'self-hosted', what: 'self-hosted runners' },
      { claim: 'pipeline_source', value: 'merge_request_event', what: "merge request pipelines (the author's code, possibly from a fork)" },
    ],
    spoofable: {},
    // The default sub is project_path:<group>/<project>:ref_type:…:ref:…, and its customisations may start with a path too.
    caselessNamesInSub: {
      written: /(?<![A-Za-z0-9_])(?:job_|source_)?(?:project|namespace)_path(?![A-Za-z0-9_])/,
      names: 'the project path, which GitLab treats without case',
      example: 'project_path:Acme/App:ref_type:branch:ref:main',
      instead: 'project_path (or project_id), which folds',
    },
    nameBasedSubject: {
      pattern: /^(?:job_|source_)?project_path:/,
      advice:
        'A path freed by a rename or deletion can be registered by another project (on gitlab.com, by anyone): pin project_id (and job_project_id) beside it',
      idsBeside: ['project_id', 'job_project_id', 'namespace_id', 'job_namespace_id'],
    },
    askForKeyway: 'id_tokens: { KEYWAY_ID_TOKEN: { aud: <keyway URL> } } on the job, a token of its own',
  },
};
