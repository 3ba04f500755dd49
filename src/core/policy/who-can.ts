import { isGitHubActionsOf } from '../claims/github-run.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { isPermissionLevel, levelCovers, REPOSITORY_PERMISSIONS } from './github-permissions.ts';
import { untrustedContextsReaching } from './lint/lint-policies.ts';
import { guardHoldsForAudienceOf, type ClaimCondition, type Policy } from './policy.ts';
import type { PolicySet } from './policy-set.ts';
import { SCOPE_TOKEN_PATTERN, type Matcher } from './schema.ts';

/** What is asked: a scope and/or an audience of a keyway token, or a GitHub permission (`contents:write`). */
export interface WhoCanQuestion {
  readonly scope?: string;
  readonly audience?: string;
  readonly githubPermission?: string;
  /**
   * The GitHub deployment the App mints on (`githubDeploymentOf` its API URL), as the exchange holds a GitHub token request
   * to it: a grant that pins no `owner_id` goes to a job of that deployment only. Undefined: any GitHub Actions issuer's job.
   */
  readonly deployment?: string | undefined;
}

/** A policy line as `explain` shows it, without a token to hold it to. */
export interface WhoCanLine {
  readonly claim: string;
  readonly matcher: Matcher;
}

export interface WhoCanPolicy {
  readonly id: string;
  readonly file: string;
  readonly description?: string;
  readonly issuer: string;
  readonly preset: string;
  /** The subject audience line first (none for a guardrail that names no audience), then every `match` line in written order: a token must meet them all. */
  readonly conditions: readonly WhoCanLine[];
  readonly grant: {
    readonly audiences: readonly string[];
    readonly scopes: readonly string[];
    readonly github?: { readonly owner: string; readonly repositories: readonly string[]; readonly permissions: Readonly<Record<string, string>> };
  };
  /** Enforcing deny policies of the same issuer (that name no subject audience, or the same one) that may refuse some of those tokens. */
  readonly guardrails: readonly { readonly id: string; readonly conditions: readonly WhoCanLine[] }[];
  /** Untrusted contexts (the `write-from-untrusted` lint rule's) whose tokens reach this grant. */
  readonly untrusted: readonly { readonly claim: string; readonly value: string; readonly what: string }[];
}

export interface WhoCanAnswer {
  readonly question: { readonly scope?: string; readonly audience?: string; readonly github_permission?: string };
  /** Enforcing allow policies that grant it, in id order. */
  readonly allow: readonly WhoCanPolicy[];
  /** Allow policies in `mode: audit` that would grant it: they grant nothing today. */
  readonly audit_only: readonly string[];
}

/** A question about a scope, audience or permission that no policy knows, or that is not well formed. */
export class WhoCanError extends KeywayError {
  override readonly name = 'WhoCanError';
  readonly code = 'who_can_invalid';
}

function checkQuestion(policies: PolicySet, question: WhoCanQuestion): void {
  const { scope, audience, githubPermission } = question;
  if (scope === undefined && audience === undefined && githubPermission === undefined)
    throw new WhoCanError('ask about a scope, an audience or a GitHub permission');
  if (githubPermission !== undefined && (scope !== undefined || audience !== undefined))
    throw new WhoCanError('a scope or audience (a keyway token) and a GitHub permission (a GitHub token) are never granted together: ask one');
  const every = [...policies.policies, ...policies.inactive.flatMap((entry) => (entry.policy === undefined ? [] : [entry.policy]))];
  const known = (what: string, value: string, granted: (policy: Policy) => readonly string[]) => {
    const all = [...new Set(every.flatMap(granted))].sort();
    if (!all.includes(value))
      throw new WhoCanError(`no policy grants ${what} ${JSON.stringify(value.slice(0, 200))}; the policies grant ${all.length === 0 ? 'none' : all.join(' ')}`);
  };
  if (scope !== undefined) {
    if (!SCOPE_TOKEN_PATTERN.test(scope)) throw new WhoCanError('a scope is one scope token (RFC 6749 section 3.3), without spaces or quotes');
    known('scope', scope, (policy) => policy.grant?.scopes ?? []);
  }
  if (audience !== undefined) known('audience', audience, (policy) => policy.grant?.audiences ?? []);
  if (githubPermission !== undefined) {
    const [name = '', level = '', ...rest] = githubPermission.split(':');
    // Own names only: `constructor` or `toString` would find Object.prototype's members, which hold no levels.
    const levels = Object.hasOwn(REPOSITORY_PERMISSIONS, name) ? REPOSITORY_PERMISSIONS[name] : undefined;
    if (rest.length > 0 || levels === undefined || !isPermissionLevel(level) || !levels.includes(level)) {
      throw new WhoCanError(
        `${JSON.stringify(githubPermission.slice(0, 200))} is not a GitHub repository permission and level, like contents:write ` +
          '(docs/github-app.md lists them)',
      );
    }
  }
}

function grants(policy: Policy, question: WhoCanQuestion): boolean {
  const grant = policy.grant;
  if (grant === undefined) return false;
  if (question.githubPermission !== undefined) {
    const [name, level] = question.githubPermission.split(':') as [string, string];
    // Without owner_id, only the token of a GitHub issuer of the App's deployment can name the owner as its own account.
    const reachable =
      grant.github?.ownerId !== undefined || isGitHubActionsOf(question.deployment, { url: policy.issuer.url, kind: policy.issuer.preset.name });
    return grant.github !== undefined && reachable && levelCovers(grant.github.permissions[name], level);
  }
  // A keyway token needs an audience; `scope` alone is asked of the policy's audiences.
  if (grant.audiences.length === 0) return false;
  if (question.scope !== undefined && !grant.scopes.includes(question.scope)) return false;
  return question.audience === undefined || grant.audiences.includes(question.audience);
}

const lines = (policy: Policy): WhoCanLine[] => [
  ...(policy.everyAudience ? [] : [{ claim: 'subject_audience', matcher: policy.subjectAudience }]),
  ...policy.conditions.map((condition) => ({ claim: condition.key, matcher: condition.written })),
];

/**
 * A GitHub token's lines: the policy's, and, for a grant that pins no `owner_id`, the owner as the job's own account
 * (decide holds such a token to the `repository_owner_id` of a job whose `repository_owner` the owner is).
 */
const githubLines = (policy: Policy): WhoCanLine[] => {
  const github = policy.grant?.github;
  if (github === undefined || github.ownerId !== undefined) return lines(policy);
  return [...lines(policy), { claim: 'repository_owner', matcher: github.owner }];
};

/** The values a matcher admits when it lists exact values only; undefined for globs, regexes, `not` and `exists`. */
function exactValues(matcher: Matcher): readonly (string | number | boolean)[] | undefined {
  if (typeof matcher !== 'object') return [matcher];
  if (!Array.isArray(matcher)) return undefined;
  const parts = (matcher as readonly Matcher[]).map(exactValues);
  return parts.every((part) => part !== undefined) ? parts.flat() : undefined;
}

/** True when no token can meet both lines: one lists exact values, none of which the other accepts. */
function disjoint(a: ClaimCondition, b: ClaimCondition): boolean {
  const none = (values: readonly (string | number | boolean)[] | undefined, other: ClaimCondition) =>
    values?.every((value) => !other.matcher.test(value)) === true;
  return none(exactValues(a.written), b) || none(exactValues(b.written), a);
}

/** A deny policy cuts into an allow policy unless a line of each on the same claim (the audience too) provably excludes the other. */
function cutsInto(guard: Policy, policy: Policy): boolean {
  if (guard.issuer.url !== policy.issuer.url || !guardHoldsForAudienceOf(guard, policy)) return false;
  return !guard.conditions.some((line) => policy.conditions.some((other) => other.key === line.key && disjoint(line, other)));
}

/**
 * Who can get a scope, audience or GitHub permission, from the policies alone: every enforcing
 * allow policy whose grant covers it, with the lines a token must meet (as `explain` shows them),
 * the deny guardrails that may refuse some of those tokens, and the untrusted contexts that reach it.
 * A token meeting a listed policy's lines and passing its guardrails is granted by `decide`.
 */
export function whoCan(policies: PolicySet, question: WhoCanQuestion): WhoCanAnswer {
  checkQuestion(policies, question);
  const allows = policies.policies.filter((policy) => policy.effect === 'allow' && grants(policy, question));
  const guardrails = policies.policies.filter((policy) => policy.effect === 'deny' && policy.mode === 'enforce');
  const byId = (a: Policy, b: Policy) => a.id.localeCompare(b.id);
  return {
    question: {
      ...(question.scope === undefined ? {} : { scope: question.scope }),
      ...(question.audience === undefined ? {} : { audience: question.audience }),
      ...(question.githubPermission === undefined ? {} : { github_permission: question.githubPermission }),
    },
    allow: allows
      .filter((policy) => policy.mode === 'enforce')
      .sort(byId)
      .map((policy) => {
        const grant = policy.grant as NonNullable<Policy['grant']>;
        return {
          id: policy.id,
          file: policy.file,
          ...(policy.description === undefined ? {} : { description: policy.description }),
          issuer: policy.issuer.url,
          preset: policy.issuer.preset.name,
          conditions: question.githubPermission === undefined ? lines(policy) : githubLines(policy),
          grant: {
            audiences: grant.audiences,
            scopes: grant.scopes,
            ...(grant.github === undefined ? {} : { github: grant.github }),
          },
          guardrails: guardrails
            .filter((guard) => cutsInto(guard, policy))
            .sort(byId)
            .map((guard) => ({ id: guard.id, conditions: lines(guard) })),
          untrusted: untrustedContextsReaching(policy, guardrails).map(({ claim, value, what }) => ({ claim, value, what })),
        };
      }),
    audit_only: allows
      .filter((policy) => policy.mode === 'audit')
      .map((policy) => policy.id)
      .sort(),
  };
}
