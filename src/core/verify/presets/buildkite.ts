import { documentedClaims, formats, LOWERCASE_UUID, type IssuerPreset } from '../issuer-preset.ts';

// https://buildkite.com/docs/agent/v3/cli-oidc — strings, except those typed below.
export const buildkite: IssuerPreset = {
  name: 'buildkite',
  url: 'https://agent.buildkite.com',
  shapes: [{ deployment: 'Buildkite', host: /^agent\.buildkite\.com$/, path: /^$/, example: 'https://agent.buildkite.com' }],
  algorithms: ['RS256'],
  // Tokens live 5 minutes unless `--lifetime` asks for up to 2 hours; a job requests one when it needs it.
  maxTokenAgeSeconds: 10 * 60,
  // organization_id comes only with `--claim organization_id`; the slug in every token can be renamed and re-registered.
  requiredClaims: ['organization_id', 'organization_slug', 'pipeline_slug', 'build_number', 'job_id'],
  claimTypes: {
    sub: 'string',
    organization_slug: 'string',
    pipeline_slug: 'string',
    build_number: 'number',
    build_branch: 'string',
    build_tag: 'string',
    build_commit: 'string',
    step_key: 'string|null',
    job_id: 'string',
    agent_id: 'string',
    build_source: 'string',
    runner_environment: 'string',
    organization_id: 'string',
    pipeline_id: 'string',
    build_id: 'string',
    cluster_id: 'string',
    cluster_name: 'string',
    queue_id: 'string',
    queue_key: 'string',
    'https://aws.amazon.com/tags': 'object',
  },
  claimFormats: formats(['organization_id', 'pipeline_id', 'cluster_id', 'queue_id', 'build_id', 'job_id'], LOWERCASE_UUID),
  caseFolds: {},
  auditClaims: [
    'organization_id', 'organization_slug', 'pipeline_id', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag',
    'build_commit', 'build_source', 'step_key', 'job_id', 'agent_id', 'runner_environment', 'cluster_id', 'queue_key',
  ],
  // One issuer and one key set for every Buildkite organization.
  shared: true,
  tenantClaims: ['organization_id'],
  singleUse: false,
  // agent_tag:<NAME> with `--claim agent_tag:<NAME>`.
  claimNames: documentedClaims(
    ['organization_slug', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag', 'build_commit', 'step_key', 'job_id', 'agent_id', 'build_source', 'runner_environment',
      'organization_id', 'pipeline_id', 'build_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key', 'https://aws.amazon.com/tags'],
    ['agent_tag:'],
  ),
  lint: {
    namesWithIds: { organization_slug: 'organization_id', pipeline_slug: 'pipeline_id', cluster_name: 'cluster_id', queue_key: 'queue_id' },
    ownerFirstNames: [],
    // Buildkite does not protect branches: whoever can start a build by hand or through the API picks the branch and commit.
    untrustedContexts: [
      { claim: 'build_source', value: 'ui', what: 'builds started by hand in the Buildkite UI (any branch, any commit)' },
      { claim: 'build_source', value: 'api', what: 'builds started through the Buildkite API (any branch, any commit)' },
      { claim: 'runner_environment', value: 'self-hosted', what: 'self-hosted agents (the token is only as safe as the agent host)' },
    ],
    spoofable: { step_key: 'step_key is whatever the pipeline definition says; gate on pipeline_id, build_source and build_branch' },
  },
};
