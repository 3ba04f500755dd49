import { documentedClaims, formats, UUID_SOURCE, type IssuerPreset } from '../issuer-preset.ts';

// https://support.atlassian.com/bitbucket-cloud/docs/integrate-pipelines-with-resource-servers-using-oidc/
const UUID_CLAIMS = ['workspaceUuid', 'repositoryUuid', 'pipelineUuid', 'stepUuid', 'deploymentEnvironmentUuid'] as const;

export const bitbucket: IssuerPreset = {
  name: 'bitbucket',
  shapes: [
    {
      deployment: 'Bitbucket Cloud, per workspace',
      host: /^api\.bitbucket\.org$/,
      path: /^\/2\.0\/workspaces\/[^/]+\/pipelines-config\/identity\/oidc$/,
      example: 'https://api.bitbucket.org/2.0/workspaces/<workspace-slug>/pipelines-config/identity/oidc',
      sharedBecause: 'names its workspace by a slug, which another workspace can take once this one is renamed or deleted',
    },
  ],
  algorithms: ['RS256'],
  // $BITBUCKET_STEP_OIDC_TOKEN is minted when the step starts; its lifetime is not documented.
  maxTokenAgeSeconds: 60 * 60,
  requiredClaims: ['workspaceUuid', 'repositoryUuid', 'pipelineUuid', 'stepUuid'],
  claimTypes: {
    sub: 'string',
    ...Object.fromEntries(UUID_CLAIMS.map((name) => [name, 'string' as const])),
    branchName: 'string',
    compliant: 'boolean',
  },
  // Every Bitbucket UUID comes wrapped in braces; a policy value without them could never match.
  claimFormats: formats(UUID_CLAIMS, {
    pattern: new RegExp(`^\\{${UUID_SOURCE}\\}$`),
    description: 'a lower-case UUID in braces, like "{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}"',
  }),
  caseFolds: {},
  auditClaims: ['workspaceUuid', 'repositoryUuid', 'pipelineUuid', 'stepUuid', 'deploymentEnvironmentUuid', 'branchName'],
  // Each workspace has its own issuer, but the issuer names the workspace by its slug, which can be renamed and re-registered:
  // over time one issuer URL serves more than one workspace, so a policy pins the workspace (or repository) by its UUID.
  shared: true,
  tenantClaims: ['workspaceUuid', 'repositoryUuid'],
  singleUse: false,
  // pipelineRunUuid and commitSha appear only in third-party parsers: accepted so a policy can use them if they are real.
  claimNames: documentedClaims([...UUID_CLAIMS, 'branchName', 'compliant', 'pipelineRunUuid', 'commitSha']),
  // Fork pull requests do not run in the parent repository's pipelines; deployment environments are the gate.
  lint: {
    namesWithIds: {},
    ownerFirstNames: [],
    untrustedContexts: [],
    spoofable: {},
    defaultAudience: {
      matches: (audience) => /^ari:cloud:bitbucket::workspace\/[^/]+$/.test(audience),
      what: "Bitbucket's default audience (ari:cloud:bitbucket::workspace/<uuid>), in the token of every step of the workspace with oidc: true",
    },
    askForKeyway: "list <keyway URL> under the step's oidc: audiences:",
  },
};
