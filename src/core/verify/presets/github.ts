import { documentedClaims, formats, type IssuerPreset, NUMERIC_ID, oneSegmentUnder, stringClaims } from '../issuer-preset.ts';

// https://docs.github.com/en/actions/reference/security/oidc — every claim is a string.
export const GITHUB_CLAIMS = [
  'sub',
  'jti',
  'actor',
  'actor_id',
  'base_ref',
  'head_ref',
  'enterprise',
  'enterprise_id',
  'environment',
  'environment_node_id',
  'event_name',
  'job_workflow_ref',
  'job_workflow_sha',
  'ref',
  'ref_type',
  'ref_protected',
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'repository_visibility',
  'run_id',
  'run_number',
  'run_attempt',
  'runner_environment',
  'sha',
  'workflow',
  'workflow_ref',
  'workflow_sha',
  'check_run_id',
] as const;

const SLUG = '[A-Za-z0-9][A-Za-z0-9_-]*';
const GITHUB_HOST = /^token\.actions\.githubusercontent\.com$/;
/** A GitHub Enterprise Server's issuer is https://<host>/_services/token. */
const GHES_ISSUER_PATH = '/_services/token';

export const github: IssuerPreset = {
  name: 'github',
  url: 'https://token.actions.githubusercontent.com',
  shapes: [
    { deployment: 'github.com', host: GITHUB_HOST, path: /^$/, example: 'https://token.actions.githubusercontent.com' },
    // The enterprise "unique issuer" setting (GHEC): tokens of that enterprise name it in `iss`.
    {
      deployment: 'GitHub Enterprise Cloud with a unique issuer',
      host: GITHUB_HOST,
      path: new RegExp(`^/${SLUG}$`),
      example: 'https://token.actions.githubusercontent.com/<enterprise-slug>',
    },
    // Data residency; the unique-issuer form (`/<subdomain>`) is not confirmed against a live token.
    {
      deployment: 'GHE.com',
      host: /^token\.actions\.[a-z0-9-]+\.ghe\.com$/,
      path: new RegExp(`^(/${SLUG})?$`),
      example: 'https://token.actions.<subdomain>.ghe.com',
    },
    { deployment: 'GitHub Enterprise Server', path: new RegExp(`^${GHES_ISSUER_PATH}$`), example: 'https://<ghes-host>/_services/token' },
  ],
  algorithms: ['RS256'],
  // Tokens live 5 minutes; a job may ask for one at any time, so a fresh one is always at hand.
  maxTokenAgeSeconds: 10 * 60,
  requiredClaims: ['repository', 'repository_id', 'repository_owner_id', 'ref', 'event_name', 'run_id'],
  claimTypes: stringClaims(GITHUB_CLAIMS),
  claimFormats: formats(['repository_id', 'repository_owner_id', 'enterprise_id', 'actor_id'], NUMERIC_ID),
  // Names fold; the ref after a workflow ref's @ is a git ref, and git refs are case-sensitive.
  caseFolds: {
    repository: 'whole',
    repository_owner: 'whole',
    actor: 'whole',
    enterprise: 'whole',
    // GitHub: "Environment names are not case sensitive": a job's environment: PRODUCTION runs in production.
    environment: 'whole',
    workflow_ref: 'before-@',
    job_workflow_ref: 'before-@',
  },
  subjectRefKeys: ['workflow_ref', 'job_workflow_ref'],
  auditClaims: [
    'repository',
    'repository_id',
    'repository_owner',
    'repository_owner_id',
    'enterprise_id',
    'ref',
    'ref_type',
    'ref_protected',
    'environment',
    'event_name',
    'workflow_ref',
    'job_workflow_ref',
    'sha',
    'runner_environment',
    'run_id',
    'run_attempt',
    // The job's check run: the end of that job (workflow_job webhook) revokes the keyway tokens granted to it.
    'check_run_id',
    'actor',
  ],
  // github.com's issuer serves every GitHub customer; an enterprise or GHES issuer, every org in it.
  shared: true,
  tenantClaims: ['repository_owner_id', 'repository_id', 'enterprise_id', 'sub'],
  singleUse: false,
  // repo_property_<name>: organisation custom properties copied into the token (2026).
  claimNames: documentedClaims(GITHUB_CLAIMS, ['repo_property_']),
  lint: {
    namesWithIds: { repository: 'repository_id', repository_owner: 'repository_owner_id', actor: 'actor_id', enterprise: 'enterprise_id' },
    ownerFirstNames: ['repository', 'repository_owner', 'workflow_ref', 'job_workflow_ref'],
    untrustedContexts: [
      { claim: 'event_name', value: 'pull_request', what: "pull_request runs (the pull request author's code)" },
      {
        claim: 'event_name',
        value: 'pull_request_target',
        what:
          "pull_request_target runs (base-repository context with its secrets, often checking out a fork's code; " +
          'since December 2025 their ref is always the default branch, so ref: refs/heads/main alone does not exclude them)',
      },
      { claim: 'event_name', value: 'workflow_run', what: "workflow_run runs (can be triggered by a fork's pull request)" },
      // Comment and review triggers: whoever may comment or review starts them, and the text they wrote is in the event.
      {
        claim: 'event_name',
        value: 'issue_comment',
        what: 'issue_comment runs (started by anyone who can comment on an issue or pull request, on the default branch with its secrets)',
      },
      { claim: 'event_name', value: 'pull_request_review', what: "pull_request_review runs (a pull request's code, started by whoever submits a review)" },
      {
        claim: 'event_name',
        value: 'pull_request_review_comment',
        what: "pull_request_review_comment runs (a pull request's code, started by whoever comments on its diff)",
      },
      {
        claim: 'event_name',
        value: 'discussion_comment',
        what: 'discussion_comment runs (started by anyone who can comment on a discussion, on the default branch with its secrets)',
      },
      // Opening or editing an issue or a discussion starts these as a comment does, with the title and body written in the event.
      { claim: 'event_name', value: 'issues', what: 'issues runs (started by anyone who can open an issue, on the default branch with its secrets)' },
      {
        claim: 'event_name',
        value: 'discussion',
        what: 'discussion runs (started by anyone who can open a discussion, on the default branch with its secrets)',
      },
      // Forking, starring and (where the wiki is open to all) editing a wiki: a stranger starts these on the default branch.
      {
        claim: 'event_name',
        value: 'fork',
        what: 'fork runs (started by anyone who can read the repository, so anyone for a public one, on the default branch with its secrets)',
      },
      {
        claim: 'event_name',
        value: 'watch',
        what: 'watch runs (started by anyone who can star the repository, so anyone for a public one, on the default branch with its secrets)',
      },
      {
        claim: 'event_name',
        value: 'gollum',
        what: "gollum runs (started by whoever may edit the wiki, anyone with an account once a public repository's wiki is open to all, on the default branch with its secrets)",
      },
      // Another GitHub App's checks, a fork's pull request's among them, with the fork's branch and commit in the event.
      {
        claim: 'event_name',
        value: 'check_run',
        what: "check_run runs (started by any GitHub App's check run, one on a fork's pull request too, on the default branch with its secrets)",
      },
      {
        claim: 'event_name',
        value: 'check_suite',
        what: "check_suite runs (started by any GitHub App's check suite, one on a fork's pull request too, on the default branch with its secrets)",
      },
      // A commit status is the check run's older form: set by any app or account with statuses: write, on a fork's commit too.
      {
        claim: 'event_name',
        value: 'status',
        what: "status runs (started by any GitHub App or account that sets a commit status, one on a fork's pull request's commit too, on the default branch with its secrets)",
      },
      { claim: 'runner_environment', value: 'self-hosted', what: "self-hosted runners (outside GitHub's control)" },
      { claim: 'ref_protected', value: 'false', what: 'unprotected refs (anyone with write access can push them)' },
    ],
    spoofable: { workflow: 'workflow is the free-text name: of a workflow; gate on workflow_ref or job_workflow_ref' },
    caselessNamesInSub: {
      written: /(?<![A-Za-z0-9_])(?:repo|environment|repository|repository_owner|actor)(?![A-Za-z0-9_])/,
      names: 'the repository and the environment, which GitHub treats without case (a workflow naming environment: PRODUCTION runs in production)',
      example: 'repo:Acme/API:environment:PRODUCTION',
      instead: 'repository (or repository_id) and environment, which fold',
    },
    nameBasedSubject: {
      pattern: /^repo:[^:@]*(:|$)/,
      advice:
        'GitHub gives repositories created, renamed or transferred after 2026-07-15 (and any that opt in) the immutable subject repo:OWNER@OWNER_ID/REPO@REPO_ID:…; this name-only pattern will not match them, and a re-registered name satisfies it. Pin repository_owner_id and repository_id, or match the immutable form',
    },
    defaultAudience: {
      matches: (audience, issuerUrl) =>
        oneSegmentUnder(audience, 'https://github.com') ||
        (issuerUrl.endsWith(GHES_ISSUER_PATH) && oneSegmentUnder(audience, issuerUrl.slice(0, -GHES_ISSUER_PATH.length))),
      what: "GitHub's default audience (https://github.com/<owner>, https://<host>/<owner> on GitHub Enterprise Server): the aud of every token a job of the owner asks for without naming one",
    },
    // include_claim_keys: `repo` in a sub is the repository's name; the others are the claims of those names.
    tenantSubjectKeys: ['repo', 'repository', 'repository_id', 'repository_owner', 'repository_owner_id', 'enterprise', 'enterprise_id'],
    askForKeyway: 'add &audience=<keyway URL> to the token request, or core.getIDToken("<keyway URL>") (keyway exchange and the action do it)',
  },
};
