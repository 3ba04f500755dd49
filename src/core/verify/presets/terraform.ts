import { documentedClaims, stringClaims, type ClaimFormat, type IssuerPreset } from '../issuer-preset.ts';

// https://developer.hashicorp.com/terraform/cloud-docs/dynamic-provider-credentials/workload-identity-tokens — every claim is a string.
const TERRAFORM_CLAIMS = [
  'sub',
  'jti',
  'terraform_organization_id',
  'terraform_organization_name',
  'terraform_project_id',
  'terraform_project_name',
  'terraform_workspace_id',
  'terraform_workspace_name',
  'terraform_full_workspace',
  'terraform_run_id',
  'terraform_run_phase',
] as const;
const id = (prefix: string): ClaimFormat => ({ pattern: new RegExp(`^${prefix}-[A-Za-z0-9]+$`), description: `an id like "${prefix}-GRNbCjYNpBB6NEH9"` });

export const terraform: IssuerPreset = {
  name: 'terraform',
  url: 'https://app.terraform.io',
  shapes: [
    { deployment: 'HCP Terraform', host: /^app\.terraform\.io$/, path: /^$/, example: 'https://app.terraform.io' },
    { deployment: 'HCP Terraform Europe', host: /^app\.eu\.terraform\.io$/, path: /^$/, example: 'https://app.eu.terraform.io' },
    { deployment: 'Terraform Enterprise', path: /^$/, example: 'https://tfe.example.com' },
  ],
  algorithms: ['RS256'],
  // A token lives until its plan or apply phase times out, which can be hours.
  maxTokenAgeSeconds: 60 * 60,
  requiredClaims: ['terraform_organization_id', 'terraform_run_id', 'terraform_run_phase'],
  claimTypes: stringClaims(TERRAFORM_CLAIMS),
  claimFormats: {
    terraform_organization_id: id('org'),
    terraform_project_id: id('prj'),
    terraform_workspace_id: id('ws'),
    terraform_run_id: id('run'),
  },
  caseFolds: {},
  auditClaims: [
    'terraform_organization_id',
    'terraform_organization_name',
    'terraform_project_id',
    'terraform_workspace_id',
    'terraform_workspace_name',
    'terraform_full_workspace',
    'terraform_run_id',
    'terraform_run_phase',
  ],
  // HCP Terraform is one issuer for every organization; so is a Terraform Enterprise instance for its own.
  shared: true,
  tenantClaims: ['terraform_organization_id', 'terraform_workspace_id', 'terraform_project_id'],
  singleUse: false,
  claimNames: documentedClaims(TERRAFORM_CLAIMS),
  lint: {
    namesWithIds: {
      terraform_organization_name: 'terraform_organization_id',
      terraform_project_name: 'terraform_project_id',
      terraform_workspace_name: 'terraform_workspace_id',
    },
    ownerFirstNames: [],
    // Speculative plans run unreviewed pull request code, and providers and data sources run arbitrary code during a plan.
    untrustedContexts: [{ claim: 'terraform_run_phase', value: 'plan', what: 'plan runs (speculative plans of unreviewed pull requests run their code)' }],
    spoofable: {},
    askForKeyway: 'set TFC_WORKLOAD_IDENTITY_AUDIENCE_KEYWAY=<keyway URL> and hand keyway TFC_WORKLOAD_IDENTITY_TOKEN_KEYWAY',
  },
};
