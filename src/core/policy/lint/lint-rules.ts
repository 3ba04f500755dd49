/**
 * The rules `keyway policy check` applies, each with a stable id, a severity and a one-line
 * why. A policy silences a rule with a reason: `lint: { ignore: { <id>: "<why it is fine here>" } }`.
 * Error-severity findings also stop the policy set from loading, unless silenced that way.
 */
export type LintSeverity = 'error' | 'warning' | 'notice';

export interface LintRule {
  readonly severity: LintSeverity;
  readonly why: string;
}

export const LINT_RULES = {
  'unpinned-tenant': {
    severity: 'error',
    why: 'a shared issuer signs tokens for every customer of that CI system; without a tenant pin (an owner, project or organisation id) any of them can match',
  },
  'unpinned-client-id': {
    severity: 'error',
    why: "a policy that trusts keyway's own issuer takes a keyway token minted by any policy that grants its audience, from whatever issuer or tenant; client_id names the one that minted it",
  },
  'unmatched-client-id': {
    severity: 'error',
    why: "a client_id pin that names no policy of the set minting keyway tokens for the policy's audience matches no token: a typo or a stale entry, which trusts whatever policy is later named or widened to fit it",
  },
  'case-insensitive-ref': {
    severity: 'error',
    why: 'git refs are case-sensitive: a claim carrying a ref that compares without case lets refs/heads/MAIN, which anyone who can push may create unprotected, pass for refs/heads/main',
  },
  'name-without-id': {
    severity: 'warning',
    why: 'names can be renamed, deleted and registered again by someone else (resurrected); the id beside a name cannot',
  },
  'policy-review-writable': {
    severity: 'warning',
    why: "a job with checks: write on the policy repository can publish a passing check run in the name of keyway's policy review, or overwrite keyway's own, and one with statuses: write (from the reviewing App's token) a commit status GitHub counts for it until keyway's check run exists; one with administration: write can take the required check off the branch (its protection or rulesets)",
  },
  'write-from-untrusted': {
    severity: 'warning',
    why: 'write-like scopes and GitHub write permissions should be unreachable from runs that execute code nobody with write access reviewed: pull requests and forks, pull_request_target (whose ref is the default branch), workflow_run, comment and review triggers, self-hosted runners, unprotected refs, SSH reruns, hand-started builds, Terraform plans',
  },
  'matches-everything': {
    severity: 'warning',
    why: 'a glob or regex that accepts every value checks nothing, yet reads as if it did',
  },
  'wildcard-owner': {
    severity: 'warning',
    why: "a wildcard in the owner or top-level group of a path (`*/api`, `**`) matches other owners' repositories",
  },
  'spoofable-claim': {
    severity: 'warning',
    why: 'anyone who can edit a workflow chooses this value freely, so it proves nothing about which pipeline ran',
  },
  'long-ttl': {
    severity: 'warning',
    why: 'a leaked token works until it expires; a pipeline step needs minutes, so grants above 15 minutes widen the window for nothing',
  },
  'unknown-claim': {
    severity: 'warning',
    why: 'the issuer never sends this claim, so the line never holds (or, with exists: false, always does): probably a typo',
  },
  'name-based-sub': {
    severity: 'notice',
    why: "a name-only `sub` pattern is satisfied by a resurrected name (a GitLab project path, a Kubernetes service account, a GitHub repository), and misses GitHub's immutable owner@id/repo@id subjects",
  },
  'exact-sub-guard': {
    severity: 'warning',
    why: 'sub compares byte for byte, but it carries names the CI system treats without case, spelt as the token spells them: a deny or a not: written on it misses the same name in another case',
  },
  'default-audience': {
    severity: 'warning',
    why: "a subject_audience that other relying parties receive too (a CI system's default audience, its own API's, a cloud's STS) lets any of them replay the tokens here",
  },
  'template-claim-optional': {
    severity: 'notice',
    why: 'a grant template reads a claim not every token carries; tokens without it get no grant from this policy',
  },
  'unreachable-github-grant': {
    severity: 'warning',
    why: "a GitHub grant that pins no owner_id goes to the caller's own account, which only a job of the App's GitHub deployment names: another CI system's tokens name no GitHub account, another deployment numbers its accounts apart, so their jobs never get a GitHub token from it",
  },
  'proxy-upstream-audience': {
    severity: 'warning',
    why: 'a keyway-jwt proxy upstream takes every keyway token for its audience: a job granted one at /token calls the upstream with it directly, around the method and path grant.proxy allows',
  },
  'cloud-subject-collision': {
    severity: 'error',
    why: "a cloud trusts keyway's sub alone: two policies granting one cloud a sub that could be the same let a pipeline of one take the other's role",
  },
  'unused-ignore': {
    severity: 'warning',
    why: 'a silenced rule that no longer fires would hide the next real finding; remove the entry',
  },
} as const satisfies Record<string, LintRule>;

export type LintRuleId = keyof typeof LINT_RULES;

export const LINT_RULE_IDS = Object.keys(LINT_RULES) as LintRuleId[];

/** Problems that keep a policy from loading at all: not a lint rule, and never silenced. */
export const INVALID_POLICY = 'invalid-policy' as const;
