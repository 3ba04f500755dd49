import type { PermissionLevel } from './github-permissions.ts';
import type { Diagnostics, TrustedIssuer } from '../verify/trusted-issuer.ts';
import type { CaseFold } from '../claims/case-fold.ts';
import type { ClaimReader } from '../claims/claim-value.ts';
import type { CompiledMatcher } from './compile-matcher.ts';
import type { Matcher } from './schema.ts';
import type { Template } from './template.ts';
import type { CloudProvider } from './cloud-profile.ts';
import type { ProxyGrant } from './proxy-rule.ts';

/** One `match` line, compiled. */
export interface ClaimCondition {
  /** The key as written: a claim name or a JSON Pointer. */
  readonly key: string;
  readonly written: Matcher;
  readonly read: ClaimReader;
  readonly matcher: CompiledMatcher;
  /** How the claim's case compares, by the issuer preset. */
  readonly fold: CaseFold;
}

/** `grant.github`, checked: one owner, known permissions. */
export interface GitHubGrant {
  /** The account, as written in the policy. */
  readonly owner: string;
  /** Repository names without the owner, as written. */
  readonly repositories: readonly string[];
  /** Permission → level. */
  readonly permissions: Readonly<Record<string, PermissionLevel>>;
  /** The owner's numeric account id (`owner_id`): required with organization permissions. */
  readonly ownerId: string | undefined;
  /** Organization permission → level; empty unless the policy grants some. */
  readonly organizationPermissions: Readonly<Record<string, PermissionLevel>>;
}

/** `grant.cloud`, checked: the token a cloud's web-identity federation takes. */
export interface CloudGrant {
  readonly provider: CloudProvider;
  /** The token's `aud`: fixed by the provider (for Google, by the Workload Identity provider). */
  readonly audience: string;
  /**
   * What the caller may name with `audience`: IAM role ARNs (aws), service accounts to impersonate
   * (gcp), application client ids (azure). The first is the default; empty (gcp only) means the
   * federated identity itself.
   */
  readonly identities: readonly string[];
  /** AWS session tags: key → template (principal_tags). */
  readonly sessionTags: ReadonlyMap<string, Template>;
  readonly transitiveTagKeys: readonly string[];
  /** Google: the Workload Identity provider's resource name. Azure: the tenant id. */
  readonly home: string | undefined;
}

export interface Grant {
  /** The first is issued when the caller names no audience. Empty when the policy grants only a GitHub token. */
  readonly audiences: readonly string[];
  /** A GitHub installation token, for requests of that token type. */
  readonly github: GitHubGrant | undefined;
  /** A token for a cloud's web-identity federation, for requests of the id_token type. */
  readonly cloud?: CloudGrant;
  /** Requests keyway makes for the caller through an upstream (`/proxy/{upstream}/…`). */
  readonly proxy?: ProxyGrant;
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly subject: Template | undefined;
  readonly claims: ReadonlyMap<string, Template>;
  /** `grant.require_dpop`: refuse a request without a DPoP proof; the issued token is bound to its key. */
  readonly requireDpop: boolean;
}

/** A trust policy as the broker evaluates it: plain data, checked in one place (`decide`). */
export interface Policy {
  readonly id: string;
  /** Path of the file under the policy directory. */
  readonly file: string;
  readonly description: string | undefined;
  readonly effect: 'allow' | 'deny';
  readonly mode: 'enforce' | 'audit';
  readonly issuer: TrustedIssuer;
  /** The `aud` the subject token must carry (unless `everyAudience`), and one its issuer's tokens are accepted for. */
  readonly subjectAudience: string;
  /**
   * A deny policy that names no `subject_audience`: it holds for every audience its issuer's tokens
   * are accepted for, so no allow policy steps around a guardrail by having its tokens minted for
   * an audience of its own.
   */
  readonly everyAudience: boolean;
  /** The first exchange this policy grants for a token claims it; later ones are refused as `replayed`. */
  readonly singleUse: boolean;
  readonly conditions: readonly ClaimCondition[];
  /** `match_actor`: what the actor of a delegated request must be; undefined when the policy takes no actor. */
  readonly actorConditions: readonly ClaimCondition[] | undefined;
  readonly grant: Grant | undefined;
  /** What a refused caller learns when this is the closest allow policy: its own `diagnostics`, else its issuer's. */
  readonly diagnostics: Diagnostics;
}

/** Whether a deny policy's audience line lets it hold for the tokens another policy takes: it names none, or the same one. */
export function guardHoldsForAudienceOf(guard: Policy, policy: Policy): boolean {
  return guard.everyAudience || guard.subjectAudience === policy.subjectAudience;
}

export function audienceIncludes(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.includes(expected));
}

/** One line of a policy, checked against one token: what it asks, what the token has, whether it held. */
export interface LineOutcome {
  /** `subject_audience` for the implicit audience line, otherwise a `match` key as written. */
  readonly key: string;
  readonly written: Matcher;
  /** The claim's value; undefined when the token lacks it. */
  readonly actual: unknown;
  readonly held: boolean;
}

export interface PolicyMatch {
  readonly policy: Policy;
  /** The subject audience line first (none for a deny policy that names no audience), then every `match` line in written order. */
  readonly lines: readonly LineOutcome[];
  readonly matched: boolean;
}

/** The actor of a delegated request (RFC 8693), whose claims `match_actor` reads. */
export interface RequestActor {
  readonly claims: Readonly<Record<string, unknown>>;
  /**
   * `actor_token`: sent with the request and verified as a subject token is (/token). `act`: the current actor the keyway
   * token a request presents names (/proxy), which keyway wrote from a verified actor token when a policy's match_actor
   * let it act: its `iss` and `sub`.
   */
  readonly via: 'actor_token' | 'act';
}

/**
 * Checks every line of a policy against a token's claims: the token must have been minted
 * for the policy's subject audience, and every `match` line must hold. The only place a
 * policy's lines are evaluated; decisions, explain and tests all read its outcome.
 */
export function matchPolicy(policy: Policy, claims: Readonly<Record<string, unknown>>, actor?: RequestActor): PolicyMatch {
  const expected = policy.subjectAudience;
  const audience = claims['aud'];
  const lines: LineOutcome[] = policy.everyAudience
    ? []
    : [{ key: 'subject_audience', written: expected, actual: audience, held: audienceIncludes(audience, expected) }];
  for (const condition of policy.conditions) {
    const actual = condition.read(claims);
    lines.push({ key: condition.key, written: condition.written, actual, held: condition.matcher.test(actual) });
  }
  // Deny by default for delegation: an allow policy that names no actor grants no request an actor_token comes with. A deny
  // policy without match_actor still applies, actor or not, so an actor_token can never slip past a guardrail. An actor a
  // keyway token names (act) was let act by its minting policy's match_actor: that token is decided on its claims, as /token
  // decides a subject token whose own act names an actor.
  if (policy.actorConditions === undefined && actor?.via === 'actor_token' && policy.effect === 'allow') {
    lines.push({ key: 'match_actor', written: 'absent', actual: actor.claims['sub'], held: false });
  }
  for (const condition of policy.actorConditions ?? []) {
    const actual = actor === undefined ? undefined : condition.read(actor.claims);
    lines.push({ key: `match_actor.${condition.key}`, written: condition.written, actual, held: actor !== undefined && condition.matcher.test(actual) });
  }
  return { policy, lines, matched: lines.every((line) => line.held) };
}
