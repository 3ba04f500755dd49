import type { Reason } from '../errors/reasons.ts';
import { asciiLowerCase } from '../claims/case-fold.ts';
import { isOrganizationPermission, levelCovers } from './github-permissions.ts';
import { callersGitHubAccount } from './callers-github-account.ts';
import type { TrustedIssuer } from '../verify/trusted-issuer.ts';
import { matchPolicy, type Grant, type Policy, type PolicyMatch, type RequestActor } from './policy.ts';
import type { PolicySet } from './policy-set.ts';
import type { TemplateRefusal } from './template.ts';
import { matchProxyRule } from './proxy-rule.ts';
import { awsTagValueProblem, CLOUD_PROFILES, type CloudProvider } from './cloud-profile.ts';

/** What the caller asked for, beyond the subject token. */
export interface AccessRequest {
  /** Requested audiences; empty means the policy's default (its first). */
  readonly audiences: readonly string[];
  /** Requested scopes; undefined means every scope the policy grants. */
  readonly scopes: readonly string[] | undefined;
  /** Present when the caller asks for a GitHub installation token rather than a keyway JWT. */
  readonly github?: GitHubAccessRequest;
  /** The actor of a delegated request (RFC 8693), for `match_actor`. */
  readonly actor?: RequestActor;
  /** Present when the caller asks for a cloud token (`grant.cloud`); then `audiences` names the role, service account or application. */
  readonly cloud?: true;
  /** Present for a proxied request (`grant.proxy`): the upstream, the method and the normalised path's decoded segments. */
  readonly proxy?: ProxyAccessRequest;
}

export interface ProxyAccessRequest {
  readonly upstream: string;
  readonly method: string;
  readonly segments: readonly string[];
}

/** The proxied request a grant allows: the rule that allowed it, and the permissions a GitHub App upstream mints for. */
export interface IssuedProxyGrant {
  readonly upstream: string;
  readonly rule: string;
  readonly permissions: Readonly<Record<string, string>>;
  /** The rule's `owner_id`, when it pins one. */
  readonly ownerId?: string;
}

/** What a caller asks of `grant.github`. */
export interface GitHubAccessRequest {
  /** `owner/name` each; undefined means every repository the policy grants. */
  readonly repositories: readonly { readonly owner: string; readonly name: string }[] | undefined;
  /** Permission → level; undefined means every permission the policy grants. */
  readonly permissions: Readonly<Record<string, string>> | undefined;
  /**
   * The GitHub deployment the App mints on (`githubDeploymentOf` its API URL): a caller's own account there is a job's of
   * that deployment only. Undefined when not known (a policy tried offline): any GitHub Actions issuer's job.
   */
  readonly deployment?: string | undefined;
}

/** The GitHub token a grant gives: what keyway asks GitHub for. */
export interface IssuedGitHubGrant {
  readonly owner: string;
  readonly repositories: readonly string[];
  /** Repository permissions. */
  readonly permissions: Readonly<Record<string, string>>;
  /** Organization permissions (empty unless the policy grants some), for the owner with this account id. */
  readonly organizationPermissions: Readonly<Record<string, string>>;
  /** The account id the owner's installation must be on: the policy's `owner_id`, or the caller's own account's. */
  readonly ownerId: string;
}

/** The cloud token a grant gives: what it carries beyond the common claims, and what the audit record names. */
export interface IssuedCloudGrant {
  readonly provider: CloudProvider;
  readonly audience: string;
  /** The role, service account or application asked for; undefined for Google's federated identity used directly. */
  readonly identity: string | undefined;
  /** AWS principal_tags, rendered: key → value. */
  readonly sessionTags: Readonly<Record<string, string>>;
  readonly transitiveTagKeys: readonly string[];
  /** Google: the Workload Identity provider. Azure: the tenant id. */
  readonly home: string | undefined;
}

/** A subject token's verified claims and the issuer that signed them (or, for explain and tests, claims taken as given). */
export interface SubjectClaims {
  readonly issuer: TrustedIssuer;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** How the decision was reached, for the audit log and `explain`. Never shown to the caller. */
export interface DecisionTrace {
  /** Policies the index offered for this token, in id order. */
  readonly candidates: readonly string[];
  /** Enforcing allow policies whose `match` held. */
  readonly matched: readonly string[];
  /** Enforcing deny policies whose `match` held. */
  readonly deniedBy: readonly string[];
  /** `mode: audit` policies and what they would have decided. */
  readonly audit: readonly { readonly policy: string; readonly would: 'grant' | 'deny' }[];
}

export interface IssuedGrant {
  readonly policy: Policy;
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly subject: string;
  readonly claims: Readonly<Record<string, string>>;
  /** Set for GitHub token requests (then `audiences` and `scopes` are empty). */
  readonly github?: IssuedGitHubGrant;
  /** Set for cloud token requests (then `audiences` holds the cloud's audience and `scopes` is empty). */
  readonly cloud?: IssuedCloudGrant;
  /** Set for proxied requests (then `audiences` and `scopes` are empty). */
  readonly proxy?: IssuedProxyGrant;
}

export type GrantRefusal = Extract<
  Reason,
  | 'audience_not_granted'
  | 'scope_not_granted'
  | 'template_claim_missing'
  | 'template_value_forbidden'
  | 'github_repository_not_granted'
  | 'github_permission_not_granted'
  | 'cloud_role_not_granted'
  | 'cloud_limit_exceeded'
  | 'proxy_not_allowed'
>;

/** What an allow policy whose lines all held gives this request, or why it gives nothing. */
export type GrantOutcome = { readonly ok: true; readonly grant: IssuedGrant } | { readonly ok: false; readonly reason: GrantRefusal; readonly detail: string };

/** One policy's part in a decision: each line's outcome, and for matching allow policies the grant outcome. */
export interface PolicyEvaluation extends PolicyMatch {
  readonly grant?: GrantOutcome;
}

export type DenialReason = Extract<Reason, 'no_policy_matched' | 'denied_by_policy'> | GrantRefusal;

// A record, so that the compiler checks it names every denial reason.
const DENIAL_REASONS: Readonly<Record<DenialReason, true>> = {
  no_policy_matched: true,
  denied_by_policy: true,
  audience_not_granted: true,
  scope_not_granted: true,
  template_claim_missing: true,
  template_value_forbidden: true,
  github_repository_not_granted: true,
  github_permission_not_granted: true,
  cloud_role_not_granted: true,
  cloud_limit_exceeded: true,
  proxy_not_allowed: true,
};

/** True for the reasons the policies give; every other refusal came before them (the token) or after them (binding, single use, minting). */
export const isDenialReason = (reason: Reason): reason is DenialReason => Object.hasOwn(DENIAL_REASONS, reason);

export type PolicyDecision = (
  | { readonly granted: true; readonly grant: IssuedGrant }
  | { readonly granted: false; readonly reason: DenialReason; readonly detail: string }
) & {
  readonly trace: DecisionTrace;
  /** Every policy looked at, in id order, with the outcome of each of its lines. */
  readonly evaluations: readonly PolicyEvaluation[];
};

export interface DecideOptions {
  /**
   * Evaluate every policy of the issuer rather than the index's candidates, so `explain` can
   * show why each one failed. The decision is the same: the index only leaves out policies
   * whose most selective exact line cannot hold.
   */
  readonly everyPolicyOfIssuer?: boolean;
}

/**
 * The whole of policy evaluation. Deny beats allow; with no matching allow policy there is no
 * token; among allow policies that match and cover the requested audience and scopes, the
 * first by id that can render its templates grants. `mode: audit` policies are evaluated and
 * traced but change nothing. The exchange, `keyway policy explain` and `keyway policy test`
 * all decide through here.
 */
export function decide(policies: PolicySet, token: SubjectClaims, request: AccessRequest, options: DecideOptions = {}): PolicyDecision {
  const issuerUrl = token.issuer.url;
  const candidates = policies.index.candidates(issuerUrl, token.claims);
  const evaluations = (options.everyPolicyOfIssuer === true ? policies.forIssuer(issuerUrl) : candidates).map((policy) => evaluate(policy, token, request));
  const matching = evaluations.filter((evaluation) => evaluation.matched);
  const enforced = matching.filter((evaluation) => evaluation.policy.mode === 'enforce');
  const deniedBy = enforced.filter((evaluation) => evaluation.policy.effect === 'deny').map((evaluation) => evaluation.policy.id);
  const allows = enforced.filter((evaluation) => evaluation.policy.effect === 'allow');

  const trace: DecisionTrace = {
    candidates: candidates.map((policy) => policy.id),
    matched: allows.map((evaluation) => evaluation.policy.id),
    deniedBy,
    audit: matching
      .filter((evaluation) => evaluation.policy.mode === 'audit')
      .map((evaluation) => ({ policy: evaluation.policy.id, would: evaluation.grant?.ok === true ? ('grant' as const) : ('deny' as const) })),
  };
  const refuse = (reason: DenialReason, detail: string): PolicyDecision => ({ granted: false, reason, detail, trace, evaluations });

  if (deniedBy.length > 0) return refuse('denied_by_policy', `denied by ${deniedBy.join(', ')}`);
  if (allows.length === 0) return refuse('no_policy_matched', 'no allow policy matched the token');

  const outcomes = allows.map((evaluation) => evaluation.grant as GrantOutcome);
  const granted = outcomes.find((outcome) => outcome.ok);
  if (granted !== undefined) return { granted: true, grant: granted.grant, trace, evaluations };
  const refusals = outcomes.filter((outcome) => !outcome.ok);
  // The most specific reason that applies to every matching policy: audience (or repository), then scope (or permission), then templates.
  const reasons = new Set(refusals.map((refusal) => refusal.reason));
  const specifics = [
    'cloud_limit_exceeded',
    'template_value_forbidden',
    'template_claim_missing',
    'scope_not_granted',
    'github_permission_not_granted',
    'github_repository_not_granted',
    'cloud_role_not_granted',
    'proxy_not_allowed',
  ] as const;
  const reason: GrantRefusal = specifics.find((specific) => reasons.has(specific)) ?? 'audience_not_granted';
  return refuse(reason, refusals.map((refusal) => refusal.detail).join('; '));
}

/**
 * Whether an enforcing allow policy's `match` holds for a token `issuerUrl` signed, whatever was asked: the caller is a
 * pipeline the policies know. Its `match_actor` aside, which says who may act for that pipeline, not whose token it is.
 */
export function knownToAnAllowPolicy(policies: PolicySet, issuerUrl: string, claims: Readonly<Record<string, unknown>>): boolean {
  return policies.index
    .candidates(issuerUrl, claims)
    .some((policy) => policy.mode === 'enforce' && policy.effect === 'allow' && matchPolicy({ ...policy, actorConditions: undefined }, claims).matched);
}

function evaluate(policy: Policy, token: SubjectClaims, request: AccessRequest): PolicyEvaluation {
  const match = matchPolicy(policy, token.claims, request.actor);
  if (!match.matched || policy.grant === undefined) return match;
  return { ...match, grant: issue(policy, policy.grant, token, request) };
}

function audiencesFor(grant: Grant, request: AccessRequest): readonly string[] | undefined {
  if (request.audiences.length === 0) return grant.audiences.slice(0, 1);
  return request.audiences.every((audience) => grant.audiences.includes(audience)) ? request.audiences : undefined;
}

function scopesFor(grant: Grant, request: AccessRequest): readonly string[] | undefined {
  if (request.scopes === undefined) return grant.scopes;
  return request.scopes.every((scope) => grant.scopes.includes(scope)) ? request.scopes : undefined;
}

/** The grant this policy issues for this request, or why it cannot. */
function issue(policy: Policy, grant: Grant, token: SubjectClaims, request: AccessRequest): GrantOutcome {
  if (request.github !== undefined) return issueGitHub(policy, grant, token, request.github);
  if (request.cloud !== undefined) return issueCloud(policy, grant, token, request);
  if (request.proxy !== undefined) return issueProxy(policy, grant, token, request.proxy);
  if (grant.audiences.length === 0) return { ok: false, reason: 'audience_not_granted', detail: `${policy.id} grants no keyway access token` };
  const audiences = audiencesFor(grant, request);
  if (audiences === undefined) {
    return { ok: false, reason: 'audience_not_granted', detail: `${policy.id} does not grant audience ${request.audiences.join(' ')}` };
  }
  const scopes = scopesFor(grant, request);
  if (scopes === undefined) {
    return { ok: false, reason: 'scope_not_granted', detail: `${policy.id} does not grant scope ${request.scopes?.join(' ') ?? ''}` };
  }
  const rendered = renderGrant(policy, grant, token, `${token.issuer.url}#${String(token.claims['sub'])}`);
  if (!rendered.ok) return rendered;
  return { ok: true, grant: { policy, audiences, scopes, ttlSeconds: grant.ttlSeconds, subject: rendered.subject, claims: rendered.claims } };
}

type Rendered = { readonly ok: true; readonly subject: string; readonly claims: Record<string, string> } | Extract<GrantOutcome, { ok: false }>;

function templateRefusal(policy: Policy, where: string, refusal: TemplateRefusal): Extract<GrantOutcome, { ok: false }> {
  return refusal.problem === 'missing'
    ? {
        ok: false,
        reason: 'template_claim_missing',
        detail: `${policy.id} ${where} reads {${refusal.key}}, which the token lacks or holds as more than one value`,
      }
    : { ok: false, reason: 'template_value_forbidden', detail: `${policy.id} ${where}: {${refusal.key}} ${refusal.why}` };
}

/** `grant.subject` (or `fallback`) and `grant.claims`, rendered over the token's claims. */
function renderGrant(policy: Policy, grant: Grant, token: SubjectClaims, fallback: string): Rendered {
  let subject = fallback;
  if (grant.subject !== undefined) {
    const rendered = grant.subject.render(token.claims);
    if (!rendered.ok) return templateRefusal(policy, 'grant.subject', rendered);
    subject = rendered.value;
  }
  const claims: Record<string, string> = {};
  for (const [name, template] of grant.claims) {
    const rendered = template.render(token.claims);
    if (!rendered.ok) return templateRefusal(policy, `grant.claims.${name}`, rendered);
    claims[name] = rendered.value;
  }
  return { ok: true, subject, claims };
}

/** The `sub` of a cloud token when the policy writes no `grant.subject`: stable, one per policy (docs/cloud/). */
export function defaultCloudSubject(policyId: string): string {
  return `policy:${policyId}`;
}

/**
 * A cloud token: the identity asked for must be one `grant.cloud` names, and every rendered value
 * must fit the cloud's limits. A value that does not fit is refused, never cut: a cut tag or
 * subject would be another identity to the cloud.
 */
function issueCloud(policy: Policy, grant: Grant, token: SubjectClaims, request: AccessRequest): GrantOutcome {
  const cloud = grant.cloud;
  if (cloud === undefined) return { ok: false, reason: 'cloud_role_not_granted', detail: `${policy.id} grants no cloud token` };
  if (request.audiences.length > 1) {
    return { ok: false, reason: 'cloud_role_not_granted', detail: `${policy.id}: a cloud token is for one role, service account or application` };
  }
  const asked = request.audiences[0];
  const identity =
    asked === undefined ? cloud.identities[0] : cloud.identities.find((one) => (cloud.provider === 'azure' ? one === asked.toLowerCase() : one === asked));
  if (asked !== undefined && identity === undefined) {
    return { ok: false, reason: 'cloud_role_not_granted', detail: `${policy.id} does not grant a ${cloud.provider} token for ${asked}` };
  }
  const rendered = renderGrant(policy, grant, token, defaultCloudSubject(policy.id));
  if (!rendered.ok) return rendered;
  const limit = CLOUD_PROFILES[cloud.provider].maxSubjectBytes;
  const subjectBytes = new TextEncoder().encode(rendered.subject).length;
  if (subjectBytes > limit) {
    return { ok: false, reason: 'cloud_limit_exceeded', detail: `${policy.id}: the sub is ${subjectBytes} bytes; ${cloud.provider} takes at most ${limit}` };
  }
  const sessionTags: Record<string, string> = {};
  for (const [key, template] of cloud.sessionTags) {
    const value = template.render(token.claims);
    if (!value.ok) return templateRefusal(policy, `grant.cloud.session_tags.${key}`, value);
    const problem = awsTagValueProblem(value.value);
    if (problem !== undefined) return { ok: false, reason: 'cloud_limit_exceeded', detail: `${policy.id}: session tag ${key} ${problem}` };
    sessionTags[key] = value.value;
  }
  return {
    ok: true,
    grant: {
      policy,
      audiences: [cloud.audience],
      scopes: [],
      ttlSeconds: grant.ttlSeconds,
      subject: rendered.subject,
      claims: rendered.claims,
      cloud: {
        provider: cloud.provider,
        audience: cloud.audience,
        identity,
        sessionTags,
        transitiveTagKeys: cloud.transitiveTagKeys,
        home: cloud.home,
      },
    },
  };
}

/** A grant of something other than a keyway token (a GitHub token, a proxied request): no audience or scope of its own, the caller as subject. */
function grantedApart(policy: Policy, grant: Grant, token: SubjectClaims, part: Pick<IssuedGrant, 'github'> | Pick<IssuedGrant, 'proxy'>): GrantOutcome {
  const subject = `${token.issuer.url}#${String(token.claims['sub'])}`;
  return { ok: true, grant: { policy, audiences: [], scopes: [], ttlSeconds: grant.ttlSeconds, subject, claims: {}, ...part } };
}

/** A proxied request: the upstream must be the grant's, and one allow rule must take the method and the normalised path. */
function issueProxy(policy: Policy, grant: Grant, token: SubjectClaims, request: ProxyAccessRequest): GrantOutcome {
  const proxy = grant.proxy;
  if (proxy === undefined || proxy.upstream !== request.upstream) {
    return { ok: false, reason: 'proxy_not_allowed', detail: `${policy.id} grants no request through upstream ${request.upstream}` };
  }
  let refused: Extract<GrantOutcome, { ok: false }> | undefined;
  for (const rule of proxy.rules) {
    const match = matchProxyRule(rule, token.claims, request.method, request.segments);
    if (match.matched) {
      return grantedApart(policy, grant, token, {
        proxy: {
          upstream: proxy.upstream,
          rule: rule.written,
          permissions: rule.permissions,
          ...(rule.ownerId === undefined ? {} : { ownerId: rule.ownerId }),
        },
      });
    }
    if (match.refusal !== undefined) refused ??= templateRefusal(policy, `grant.proxy.allow ${rule.written}`, match.refusal);
  }
  return refused ?? { ok: false, reason: 'proxy_not_allowed', detail: `${policy.id} allows no ${request.method} of this path through ${request.upstream}` };
}

/** A GitHub installation token: the repositories and permissions asked for must lie within `grant.github`. */
function issueGitHub(policy: Policy, grant: Grant, token: SubjectClaims, request: GitHubAccessRequest): GrantOutcome {
  const github = grant.github;
  if (github === undefined) return { ok: false, reason: 'github_repository_not_granted', detail: `${policy.id} grants no GitHub token` };
  let repositories = github.repositories;
  if (request.repositories !== undefined) {
    const outside = request.repositories.filter(
      (asked) =>
        asciiLowerCase(asked.owner) !== asciiLowerCase(github.owner) ||
        !github.repositories.some((name) => asciiLowerCase(name) === asciiLowerCase(asked.name)),
    );
    if (outside.length > 0) {
      return {
        ok: false,
        reason: 'github_repository_not_granted',
        detail: `${policy.id} does not grant ${outside.map((asked) => `${asked.owner}/${asked.name}`).join(', ')}`,
      };
    }
    repositories = request.repositories.map((asked) => github.repositories.find((name) => asciiLowerCase(name) === asciiLowerCase(asked.name))!);
  }
  let permissions: Readonly<Record<string, string>> = github.permissions;
  let organizationPermissions: Readonly<Record<string, string>> = github.organizationPermissions;
  if (request.permissions !== undefined) {
    const held = (name: string) => (isOrganizationPermission(name) ? github.organizationPermissions[name] : github.permissions[name]);
    const beyond = Object.entries(request.permissions).filter(([name, level]) => !levelCovers(held(name), level));
    if (beyond.length > 0) {
      return {
        ok: false,
        reason: 'github_permission_not_granted',
        detail: `${policy.id} does not grant ${beyond.map(([name, level]) => `${name}:${level}`).join(' ')}`,
      };
    }
    const asked = Object.entries(request.permissions);
    permissions = Object.fromEntries(asked.filter(([name]) => !isOrganizationPermission(name)));
    organizationPermissions = Object.fromEntries(asked.filter(([name]) => isOrganizationPermission(name)));
  }
  // A login can be renamed and registered again: the token goes to the account the policy pins, or to the caller's own.
  const ownerId = github.ownerId ?? callersGitHubAccount(token, github.owner, request.deployment);
  if (ownerId === undefined) {
    return {
      ok: false,
      reason: 'github_repository_not_granted',
      detail: `${policy.id} grants repositories of ${github.owner}, which is not the caller's own account, without pinning it by id (a central policy's grant.github.owner_id): a login can be renamed and registered again`,
    };
  }
  return grantedApart(policy, grant, token, {
    github: { owner: github.owner, ownerId, repositories: [...new Set(repositories)], permissions, organizationPermissions },
  });
}
