import { documentedClaims, formats, LOWERCASE_UUID, UUID_SOURCE, type IssuerPreset } from '../issuer-preset.ts';

// https://circleci.com/docs/guides/permissions-authentication/openid-connect-tokens/ — custom claims are namespaced.
const claim = (name: string): string => `oidc.circleci.com/${name}`;
const ORG_PATH = new RegExp(`^/org/(?<tenant>${UUID_SOURCE})$`);
const UUID = new RegExp(`^${UUID_SOURCE}$`, 'i');

export const circleci: IssuerPreset = {
  name: 'circleci',
  shapes: [
    {
      deployment: 'CircleCI cloud, per organization',
      host: /^oidc\.circleci\.com$/,
      path: ORG_PATH,
      tenantClaim: claim('org-id'),
      example: 'https://oidc.circleci.com/org/<org-uuid>',
    },
    // `circleci run oidc get --root-issuer`: one issuer for every organization.
    { deployment: 'CircleCI cloud, root issuer', host: /^oidc\.circleci\.com$/, path: /^$/, shared: true, example: 'https://oidc.circleci.com' },
    { deployment: 'CircleCI server, per organization', path: ORG_PATH, tenantClaim: claim('org-id'), example: 'https://<circleci-oidc-host>/org/<org-uuid>' },
    { deployment: 'CircleCI server, root issuer', path: /^$/, shared: true, example: 'https://<circleci-oidc-host>' },
  ],
  algorithms: ['RS256'],
  // Tokens live an hour and are minted shortly before the job starts.
  maxTokenAgeSeconds: 60 * 60,
  requiredClaims: [claim('org-id'), claim('project-id'), claim('job-id')],
  claimTypes: {
    sub: 'string',
    [claim('context-ids')]: 'string[]',
    [claim('job-id')]: 'string',
    [claim('org-id')]: 'string',
    [claim('pipeline-definition-id')]: 'string',
    [claim('pipeline-id')]: 'string',
    [claim('project-id')]: 'string',
    [claim('ssh-rerun')]: 'boolean',
    [claim('vcs-origin')]: 'string',
    [claim('vcs-ref')]: 'string',
    [claim('workflow-id')]: 'string',
  },
  claimFormats: formats(
    [claim('org-id'), claim('project-id'), claim('pipeline-id'), claim('job-id'), claim('workflow-id'), claim('pipeline-definition-id')],
    LOWERCASE_UUID,
  ),
  // github.com/Acme/API and github.com/acme/api are one repository.
  caseFolds: { [claim('vcs-origin')]: 'whole' },
  auditClaims: [
    claim('org-id'),
    claim('project-id'),
    claim('pipeline-definition-id'),
    claim('pipeline-id'),
    claim('workflow-id'),
    claim('job-id'),
    claim('vcs-origin'),
    claim('vcs-ref'),
    claim('ssh-rerun'),
    claim('context-ids'),
  ],
  // A per-organization issuer names its tenant; the root issuer (its shape says so) does not.
  shared: false,
  // The UUIDs pin the organization; sub starts with the same org/<uuid>/, but a glob on it pins nothing a reader can check.
  tenantClaims: [claim('org-id'), claim('project-id')],
  singleUse: false,
  claimNames: documentedClaims(
    ['context-ids', 'job-id', 'org-id', 'pipeline-definition-id', 'pipeline-id', 'project-id', 'ssh-rerun', 'vcs-origin', 'vcs-ref', 'workflow-id'].map(claim),
  ),
  lint: {
    // The origin is the repository's name on its VCS host; the project UUID stays with the project.
    namesWithIds: { [claim('vcs-origin')]: claim('project-id') },
    ownerFirstNames: [],
    untrustedContexts: [
      { claim: claim('ssh-rerun'), value: 'true', what: 'jobs rerun with SSH (a person has a shell in the job)' },
      // With "Pass secrets to builds from forked pull requests" on, a fork's build runs in the project with the fork as its origin.
      { claim: claim('vcs-origin'), value: 'github.com/someone-else/fork', sample: true, what: 'forked pull request builds (the fork is the vcs-origin)' },
    ],
    spoofable: {},
    // The organization id: $CIRCLE_OIDC_TOKEN and $CIRCLE_OIDC_TOKEN_V2 carry it in every job. No custom audience is a bare UUID in practice.
    defaultAudience: {
      matches: (audience) => UUID.test(audience),
      what: "a UUID, the form of CircleCI's default audience: the organization id, the aud of $CIRCLE_OIDC_TOKEN and $CIRCLE_OIDC_TOKEN_V2 in every job of the organization",
    },
    askForKeyway: 'circleci run oidc get --claims \'{"aud":"<keyway URL>"}\'',
  },
};
