import { documentedClaims, formats, LOWERCASE_UUID, NUMERIC_ID, stringClaims, UUID_SOURCE, type IssuerPreset } from '../issuer-preset.ts';

// https://learn.microsoft.com/en-us/rest/api/azure/devops/distributedtask/oidctoken/create — every claim is a string.
const AZURE_DEVOPS_CLAIMS = ['sub', 'jti', 'org_id', 'prj_id', 'def_id', 'rpo_id', 'rpo_uri', 'rpo_ver', 'rpo_ref', 'run_id'] as const;

export const azureDevops: IssuerPreset = {
  name: 'azure-devops',
  shapes: [
    {
      deployment: 'Azure DevOps Services, per organization',
      host: /^vstoken\.dev\.azure\.com$/,
      path: new RegExp(`^/(?<tenant>${UUID_SOURCE})$`),
      // One JWKS signs for every organization, so the organization the issuer names must be the one the token names.
      tenantClaim: 'org_id',
      example: 'https://vstoken.dev.azure.com/<organization-guid>',
    },
  ],
  algorithms: ['RS256'],
  // Tokens live about 5 minutes; a job requests one when it needs it.
  maxTokenAgeSeconds: 10 * 60,
  // Pipeline tokens carry these; service-connection tokens carry only names and are not accepted.
  requiredClaims: ['org_id', 'prj_id', 'def_id'],
  claimTypes: stringClaims(AZURE_DEVOPS_CLAIMS),
  claimFormats: { ...formats(['org_id', 'prj_id'], LOWERCASE_UUID), ...formats(['def_id', 'run_id'], NUMERIC_ID) },
  caseFolds: {},
  auditClaims: ['org_id', 'prj_id', 'def_id', 'rpo_id', 'rpo_ref', 'rpo_ver', 'run_id'],
  shared: false,
  tenantClaims: ['org_id', 'prj_id', 'def_id'],
  // The audience cannot be changed: a token meant for Entra ID is also one for keyway, so each is good for one exchange.
  fixedAudience: 'api://AzureADTokenExchange',
  singleUse: true,
  claimNames: documentedClaims(AZURE_DEVOPS_CLAIMS),
  lint: {
    namesWithIds: {},
    ownerFirstNames: [],
    untrustedContexts: [{ claim: 'rpo_ref', value: 'refs/pull/1/merge', sample: true, what: 'pull request validation builds (rpo_ref refs/pull/<n>/merge)' }],
    spoofable: {},
  },
};
