/**
 * Realistic CI token payloads, one per issuer preset, taken from ../shared/reference/ci-oidc-tokens.md
 * (real tokens and vendor documentation examples; values noted where they differ). Each is
 * re-timed to now and re-addressed to a stand-in issuer and the broker, then signed at test
 * time by the test issuer server at that CI system's exact issuer path.
 */
export type Claims = Record<string, unknown>;

const now = (): number => Math.floor(Date.now() / 1000);
const SHA = '714a629c0b401fdce83e847fc9589983fc6f46bc';

/**
 * GitHub Actions: the claim set of a real 2026 token (andreaso/output-oidc-claims-action), for the
 * docs' octo-org example (owner id 65, repository id 74, immutable `sub` form), deploying from
 * main through the production environment with a central reusable workflow.
 */
export function githubToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    actor: 'octocat',
    actor_id: '583231',
    aud,
    base_ref: '',
    check_run_id: '96193868770',
    environment: 'production',
    event_name: 'push',
    exp: iat + 300,
    head_ref: '',
    iat,
    iss,
    job_workflow_ref: 'octo-org/octo-automation/.github/workflows/deploy.yml@refs/heads/main',
    job_workflow_sha: SHA,
    jti: crypto.randomUUID(),
    nbf: iat - 300,
    ref: 'refs/heads/main',
    ref_protected: 'true',
    ref_type: 'branch',
    repository: 'octo-org/octo-repo',
    repository_id: '74',
    repository_owner: 'octo-org',
    repository_owner_id: '65',
    repository_visibility: 'private',
    run_attempt: '1',
    run_id: '32291736541',
    run_number: '1',
    runner_environment: 'github-hosted',
    sha: SHA,
    sub: 'repo:octo-org@65/octo-repo@74:environment:production',
    workflow: 'Deploy',
    workflow_ref: 'octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main',
    workflow_sha: SHA,
    ...overrides,
  };
}

/** GitLab CI `id_tokens`: the documentation example, on the protected main branch deploying to a protected production environment. */
export function gitlabToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    namespace_id: '72',
    namespace_path: 'my-group',
    project_id: '20',
    project_path: 'my-group/my-project',
    user_id: '1',
    user_login: 'sample-user',
    user_email: 'sample-user@example.com',
    user_access_level: 'owner',
    user_identities: [
      { provider: 'github', extern_uid: '2435223452345' },
      { provider: 'bitbucket', extern_uid: 'john.smith' },
    ],
    pipeline_id: '574',
    pipeline_source: 'push',
    job_id: '302',
    ref: 'main',
    ref_type: 'branch',
    ref_path: 'refs/heads/main',
    ref_protected: 'true',
    groups_direct: ['mygroup/mysubgroup', 'myothergroup/myothersubgroup'],
    environment: 'production',
    environment_protected: 'true',
    deployment_tier: 'production',
    environment_action: 'start',
    runner_id: 1,
    runner_environment: 'gitlab-hosted',
    sha: SHA,
    project_visibility: 'private',
    ci_config_ref_uri: 'gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main',
    ci_config_sha: SHA,
    job_project_id: '20',
    job_project_path: 'my-group/my-project',
    job_namespace_id: '72',
    job_namespace_path: 'my-group',
    jti: crypto.randomUUID(),
    iss,
    iat,
    nbf: iat - 5,
    exp: iat + 3600,
    sub: 'project_path:my-group/my-project:ref_type:branch:ref:main',
    aud,
    ...overrides,
  };
}

/**
 * What GitLab signs with the same keys when it is a user's OpenID Connect provider
 * ("Sign in with GitLab"): a person, no project, pipeline or job.
 */
export function gitlabUserLoginToken(iss: string, aud: string): Claims {
  const iat = now();
  return {
    iss,
    sub: '1',
    aud,
    exp: iat + 120,
    iat,
    auth_time: iat - 30,
    sub_legacy: '2d1f34fd2bbb3d2e3b8c5bd5f7d62e8b1c0bd8a7e6fbbc5a2e1c6b0f5a7d3e21',
    name: 'Sample User',
    nickname: 'sample-user',
    preferred_username: 'sample-user',
    email: 'sample-user@example.com',
    email_verified: true,
    groups_direct: ['my-group'],
  };
}

export const CIRCLECI_ORG = '8d5a3a2c-3c16-4a3e-9d55-4c4d2f3e9b11';
export const CIRCLECI_PROJECT = '2f7c8a41-6d1e-4b8f-9c3a-0e5b7d9f1a22';

/** CircleCI: the example assembled from the documented claim formats ($CIRCLE_OIDC_TOKEN_V2, custom audience). */
export function circleciToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    iss,
    sub: `org/${CIRCLECI_ORG}/project/${CIRCLECI_PROJECT}/user/5b1e9c77-0a3d-4f2e-8b6c-1d2e3f4a5b33/vcs-origin/github.com/acme/api/vcs-ref/refs/heads/main`,
    aud,
    iat,
    exp: iat + 3600,
    'oidc.circleci.com/context-ids': ['0b3c7f6e-9a1d-4c2b-8e5f-7a6d5c4b3a21'],
    'oidc.circleci.com/job-id': '6e2d4f1a-8b3c-4d5e-9f0a-1b2c3d4e5f60',
    'oidc.circleci.com/org-id': CIRCLECI_ORG,
    'oidc.circleci.com/pipeline-definition-id': '3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b',
    'oidc.circleci.com/pipeline-id': '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
    'oidc.circleci.com/project-id': CIRCLECI_PROJECT,
    'oidc.circleci.com/ssh-rerun': false,
    'oidc.circleci.com/vcs-origin': 'github.com/acme/api',
    'oidc.circleci.com/vcs-ref': 'refs/heads/main',
    'oidc.circleci.com/workflow-id': '4b5c6d7e-8f90-4a1b-b2c3-d4e5f6a7b8c9',
    ...overrides,
  };
}

/** Buildkite: the documentation example with `--claim organization_id,pipeline_id`, built from a push webhook. */
export function buildkiteToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    iss,
    sub: `organization:acme-inc:pipeline:super-duper-app:ref:refs/heads/main:commit:9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build`,
    aud,
    iat,
    nbf: iat,
    exp: iat + 300,
    organization_slug: 'acme-inc',
    pipeline_slug: 'super-duper-app',
    build_number: 1,
    build_branch: 'main',
    build_commit: '9f3182061f1e2cca4702c368cbc039b7dc9d4485',
    step_key: 'build',
    job_id: '0184990a-477b-4fa8-9968-496074483cee',
    agent_id: '0184990a-4782-42b5-afc1-16715b10b8ff',
    build_source: 'webhook',
    runner_environment: 'buildkite-hosted',
    organization_id: '0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec',
    pipeline_id: '0184990a-4779-4b25-8a6c-4c47b0bc5a37',
    ...overrides,
  };
}

/** Bitbucket Pipelines: the example assembled from the documented formats; `aud` is always an array. */
export function bitbucketToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    iss,
    aud: [aud, 'ari:cloud:bitbucket::workspace/5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10'],
    sub: '{7c1e9d2a-3b4f-4a6e-8d9c-0f1e2d3c4b5a}:{d2c1b0a9-8f7e-4d6c-9b5a-4f3e2d1c0b9a}:{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}',
    workspaceUuid: '{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}',
    repositoryUuid: '{7c1e9d2a-3b4f-4a6e-8d9c-0f1e2d3c4b5a}',
    pipelineUuid: '{9e8d7c6b-5a4f-4e3d-a2c1-b0a9f8e7d6c5}',
    stepUuid: '{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}',
    deploymentEnvironmentUuid: '{d2c1b0a9-8f7e-4d6c-9b5a-4f3e2d1c0b9a}',
    branchName: 'main',
    compliant: true,
    iat,
    exp: iat + 3600,
    ...overrides,
  };
}

export const AZURE_DEVOPS_ORG = '0ca3ddd9-f0b0-4635-a98c-5866526961b6';

/** Azure DevOps pipeline token: a real token (teleport RFD 0211), re-timed; its audience is fixed. */
export function azureDevopsToken(iss: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    jti: crypto.randomUUID(),
    sub: 'p://noahstride0304/testing-azure-devops-join/strideynet.azure-devops-testing',
    aud: 'api://AzureADTokenExchange',
    org_id: AZURE_DEVOPS_ORG,
    prj_id: '271ef6f7-5998-4b0f-86fb-4b54d9129990',
    def_id: '1',
    rpo_id: 'strideynet/azure-devops-testing',
    rpo_uri: 'https://github.com/strideynet/azure-devops-testing.git',
    rpo_ver: 'c291ea713801eb300054d353d279e7b02331f671',
    rpo_ref: 'refs/heads/main',
    run_id: '5',
    iss,
    nbf: iat - 600,
    exp: iat + 299,
    iat,
    ...overrides,
  };
}

/** A Google service account ID token from a GCE metadata server with format=full (CyberArk Conjur docs). */
export function googleToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    aud,
    azp: '110987294251917851298',
    email: '716149158341-compute@developer.gserviceaccount.com',
    email_verified: true,
    exp: iat + 3600,
    google: {
      compute_engine: {
        instance_creation_timestamp: 1595155766,
        instance_id: '4340508760561261530',
        instance_name: 'vm-for-gcp',
        project_id: 'eng-serenity-231813',
        project_number: 716149158341,
        zone: 'us-central1-a',
      },
    },
    iat,
    iss,
    sub: '110987294251917851298',
    ...overrides,
  };
}

/** What the same issuer signs when a person signs in with Google. */
export function googleEndUserToken(iss: string, aud: string): Claims {
  const iat = now();
  return {
    iss,
    azp: '407408718192.apps.googleusercontent.com',
    aud,
    sub: '108347572918302715524',
    email: 'alice@gmail.com',
    email_verified: true,
    at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q',
    name: 'Alice',
    given_name: 'Alice',
    iat,
    exp: iat + 3600,
  };
}

/**
 * A projected service account token: the structure of the real minikube token in the reference,
 * as a pod in namespace `ci` running as `deployer` gets it with a dedicated audience.
 */
export function kubernetesToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    aud: [aud],
    exp: iat + 3600,
    iat,
    iss,
    jti: crypto.randomUUID(),
    'kubernetes.io': {
      namespace: 'ci',
      node: { name: 'ip-10-0-12-34.eu-west-1.compute.internal', uid: '5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d' },
      pod: { name: 'release-7dr4z', uid: '6b2d3c4e-5f60-4b7c-9d8e-0f1a2b3c4d5e' },
      serviceaccount: { name: 'deployer', uid: '3f9a2c1e-7b6d-4e5f-8a9b-0c1d2e3f4a5b' },
    },
    nbf: iat,
    sub: 'system:serviceaccount:ci:deployer',
    ...overrides,
  };
}

/** HCP Terraform workload identity token: the documentation example, re-timed, for the apply phase. */
export function terraformToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    jti: crypto.randomUUID(),
    iss,
    aud,
    iat,
    nbf: iat - 5,
    exp: iat + 300,
    sub: 'organization:my-org:project:Default Project:workspace:my-workspace:run_phase:apply',
    terraform_organization_id: 'org-GRNbCjYNpBB6NEH9',
    terraform_organization_name: 'my-org',
    terraform_project_id: 'prj-vegSA59s1XPwMr2t',
    terraform_project_name: 'Default Project',
    terraform_workspace_id: 'ws-mbsd5E3Ktt5Rg2Xm',
    terraform_workspace_name: 'my-workspace',
    terraform_full_workspace: 'organization:my-org:project:Default Project:workspace:my-workspace',
    terraform_run_id: 'run-X3n1AUXNGWbfECsJ',
    terraform_run_phase: 'apply',
    ...overrides,
  };
}

/** Forgejo Actions: the example assembled from the documented claim list. */
export function forgejoToken(iss: string, aud: string, overrides: Claims = {}): Claims {
  const iat = now();
  return {
    actor: 'alice',
    aud,
    base_ref: '',
    event_name: 'push',
    exp: iat + 3600,
    iat,
    iss,
    nbf: iat,
    ref: 'refs/heads/main',
    ref_protected: 'true',
    ref_type: 'branch',
    repository: 'acme/api',
    repository_owner: 'acme',
    run_attempt: '1',
    run_id: '123456',
    run_number: '42',
    sha: '0123456789abcdef0123456789abcdef01234567',
    sub: 'repo:acme/api:ref:refs/heads/main',
    workflow: 'deploy',
    workflow_ref: 'acme/api/.forgejo/workflows/deploy.yml@refs/heads/main',
    ...overrides,
  };
}
