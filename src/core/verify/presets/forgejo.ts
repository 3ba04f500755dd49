import { documentedClaims, formats, type IssuerPreset, NUMERIC_ID, oneSegmentUnder, stringClaims } from '../issuer-preset.ts';

// https://forgejo.org/docs/next/user/actions/security-openid-connect/ — GitHub's contract; every claim is a string.
const FORGEJO_CLAIMS = [
  'sub',
  'jti',
  'actor',
  'actor_id',
  'base_ref',
  'event_name',
  'ref',
  'ref_protected',
  'ref_type',
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'run_attempt',
  'run_id',
  'run_number',
  'sha',
  'workflow',
  'workflow_ref',
] as const;

export const forgejo: IssuerPreset = {
  name: 'forgejo',
  shapes: [{ deployment: 'Forgejo instance', path: /^(\/[^/]+)*\/api\/actions$/, example: 'https://codeberg.org/api/actions' }],
  algorithms: ['RS256'],
  // Like GitHub, a job asks for a token when it needs one.
  maxTokenAgeSeconds: 10 * 60,
  requiredClaims: ['repository', 'repository_owner', 'ref', 'event_name', 'run_id'],
  claimTypes: stringClaims(FORGEJO_CLAIMS),
  // Ids arrive with Forgejo's immutable-subject change; names are all older instances send.
  claimFormats: formats(['repository_id', 'repository_owner_id', 'actor_id'], NUMERIC_ID),
  // Names fold; workflow_ref's ref after the @ is a git ref, and git refs are case-sensitive.
  caseFolds: { repository: 'whole', repository_owner: 'whole', actor: 'whole', workflow_ref: 'before-@' },
  auditClaims: [
    'repository',
    'repository_id',
    'repository_owner',
    'repository_owner_id',
    'ref',
    'ref_type',
    'ref_protected',
    'event_name',
    'workflow_ref',
    'sha',
    'run_id',
    'actor',
  ],
  // One issuer per instance, for all of its users.
  shared: true,
  tenantClaims: ['repository_owner_id', 'repository_id', 'repository_owner', 'repository', 'sub'],
  singleUse: false,
  claimNames: documentedClaims(FORGEJO_CLAIMS),
  lint: {
    // The ids come with Forgejo's immutable-subject change; on an instance that sends only names, silence this with that reason.
    namesWithIds: { repository: 'repository_id', repository_owner: 'repository_owner_id', actor: 'actor_id' },
    ownerFirstNames: ['repository', 'repository_owner', 'workflow_ref'],
    caselessNamesInSub: {
      written: /(?<![A-Za-z0-9_])(?:repo|repository|repository_owner)(?![A-Za-z0-9_])/,
      names: 'the repository, which Forgejo treats without case',
      example: 'repo:Acme/API:ref:refs/heads/main',
      instead: 'repository (or repository_id), which folds',
    },
    untrustedContexts: [
      { claim: 'event_name', value: 'pull_request', what: "pull_request runs (the pull request author's code)" },
      { claim: 'event_name', value: 'pull_request_target', what: "pull_request_target runs (base-repository context, often checking out a fork's code)" },
      // Comment and review triggers, as Forgejo's modules/actions/github.go knows them; event_name is the workflow's on: key.
      // Comments run on the default branch (IsDefaultBranchWorkflow); pull_request_comment is Forgejo's alias of issue_comment.
      {
        claim: 'event_name',
        value: 'issue_comment',
        what: 'issue_comment runs (started by anyone who can comment on an issue or pull request, on the default branch with its secrets)',
      },
      {
        claim: 'event_name',
        value: 'pull_request_comment',
        what: "pull_request_comment runs (Forgejo's issue_comment for pull requests: anyone who can comment, on the default branch with its secrets)",
      },
      // issues runs on the default branch too (IsDefaultBranchWorkflow), for anyone who can open an issue, with its title and body.
      {
        claim: 'event_name',
        value: 'issues',
        what: 'issues runs (started by anyone who can open an issue, on the default branch with its secrets)',
      },
      // fork and gollum run on the default branch too: anyone who can read the repository forks it, and a public
      // repository's wiki may be writeable by everyone (its globally writeable wiki setting).
      {
        claim: 'event_name',
        value: 'fork',
        what: 'fork runs (started by anyone who can read the repository, so anyone for a public one, on the default branch with its secrets)',
      },
      {
        claim: 'event_name',
        value: 'gollum',
        what: "gollum runs (started by whoever may edit the wiki, anyone with an account once a public repository's wiki is writeable by all, on the default branch with its secrets)",
      },
      {
        claim: 'event_name',
        value: 'pull_request_review',
        what: "pull_request_review runs (a pull request's code, started by whoever approves or rejects it)",
      },
      {
        claim: 'event_name',
        value: 'pull_request_review_comment',
        what: "pull_request_review_comment runs (a pull request's code, started by whoever comments on its diff)",
      },
      { claim: 'ref_protected', value: 'false', what: 'unprotected refs (anyone with write access can push them)' },
    ],
    spoofable: { workflow: 'workflow is the free-text name: of a workflow; gate on workflow_ref' },
    // <instance>/<owner>; the issuer is <instance>/api/actions.
    defaultAudience: {
      matches: (audience, issuerUrl) => oneSegmentUnder(audience, issuerUrl.replace(/\/api\/actions$/, '')),
      what: "Forgejo's default audience (<instance>/<owner>): the aud of every token a job of the owner asks for without naming one",
    },
    askForKeyway: 'add &audience=<keyway URL> to the token request',
  },
};
