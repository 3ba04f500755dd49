import type { CompiledPolicyFile, PolicyCompilation } from '../load-policies.ts';
import type { Policy } from '../policy.ts';
import type { TrustedIssuer } from '../../verify/trusted-issuer.ts';
import { PERMISSION_LEVELS, type PermissionLevel } from '../github-permissions.ts';
import { compareMatchers, type InclusionBudget, type Widening } from './matcher-inclusion.ts';

/** What a policy contributes to decisions: nothing (disabled, audit, does not load), allows, or denies. */
type Role = 'allow' | 'deny' | 'audit' | 'off';

/** One edit of one policy, and what it does to access: widened, narrowed, changed (cannot tell), or none. */
export interface PolicyChange {
  readonly what: string;
  readonly access: 'widened' | 'narrowed' | 'changed' | 'none';
}

export type PolicyDiffStatus = 'added' | 'removed' | 'widened' | 'narrowed' | 'widened and narrowed' | 'changed' | 'edited';

export interface PolicyDiff {
  readonly id: string;
  readonly status: PolicyDiffStatus;
  /** For added and removed policies: what the policy did or does to access. */
  readonly access: PolicyChange['access'];
  readonly changes: readonly PolicyChange[];
}

/**
 * A value as written, in JSON, but a number JSON has no spelling for (YAML's `.inf`, `-.inf`) as the text it matches
 * ("Infinity"): JSON writes each `null`, and a line written the same is not compared, so `.inf` → `-.inf` would show nothing.
 */
const show = (value: unknown): string =>
  JSON.stringify(value, (_key, item: unknown) => (typeof item === 'number' && !Number.isFinite(item) ? String(item) : item));

function roleOf(entry: CompiledPolicyFile): Role {
  const policy = entry.policy;
  if (policy === undefined || entry.inactive !== undefined) return 'off';
  return policy.mode === 'audit' ? 'audit' : policy.effect;
}

function describeRole(role: Role): string {
  return { allow: 'allow, enforced', deny: 'deny, enforced', audit: 'mode: audit, not enforced', off: 'inactive' }[role];
}

/** A policy that starts or stops taking part: how access moves. */
function roleAccess(role: Role, arriving: boolean): PolicyChange['access'] {
  if (role === 'allow') return arriving ? 'widened' : 'narrowed';
  if (role === 'deny') return arriving ? 'narrowed' : 'widened';
  return 'none';
}

/**
 * What a change to the policy directory does to access, policy by policy (by id): added,
 * removed, widened (a line removed or broadened, audiences, scopes or TTL added), narrowed, or
 * changed where keyway cannot prove a direction (two different regexes, a new issuer). A deny
 * policy that matches more narrows access; a policy in audit mode or disabled changes none.
 */
export function diffPolicies(before: PolicyCompilation, after: PolicyCompilation): PolicyDiff[] {
  const old = new Map(before.files.map((entry) => [entry.id, entry]));
  const now = new Map(after.files.map((entry) => [entry.id, entry]));
  const ids = [...new Set([...old.keys(), ...now.keys()])].sort();
  const diffs: PolicyDiff[] = [];
  for (const id of ids) {
    const a = old.get(id);
    const b = now.get(id);
    if (a === undefined && b !== undefined) {
      diffs.push({
        id,
        status: 'added',
        access: roleAccess(roleOf(b), true),
        changes: [{ what: describeRole(roleOf(b)), access: roleAccess(roleOf(b), true) }, ...organizationGrant(b, roleAccess(roleOf(b), true))],
      });
    } else if (b === undefined && a !== undefined) {
      diffs.push({
        id,
        status: 'removed',
        access: roleAccess(roleOf(a), false),
        changes: [{ what: `was ${describeRole(roleOf(a))}`, access: roleAccess(roleOf(a), false) }, ...organizationGrant(a, roleAccess(roleOf(a), false))],
      });
    } else if (a !== undefined && b !== undefined) {
      const changes = changesOf(a, b);
      if (changes.length > 0) diffs.push({ id, status: statusOf(changes), access: 'none', changes });
    }
  }
  return diffs;
}

/** Organization permissions reach a whole organization: an added or removed policy's are named on a line of their own. */
function organizationGrant(entry: CompiledPolicyFile, access: PolicyChange['access']): PolicyChange[] {
  const github = entry.policy?.grant?.github;
  const permissions = permissionList(github?.organizationPermissions);
  if (github === undefined || permissions.length === 0) return [];
  return [{ what: `organization permissions for ${github.owner} (id ${github.ownerId}): ${permissions.join(' ')}`, access }];
}

const permissionList = (permissions: Readonly<Record<string, string>> | undefined): string[] =>
  Object.entries(permissions ?? {}).map(([name, level]) => `${name}:${level}`);

function statusOf(changes: readonly PolicyChange[]): PolicyDiffStatus {
  const moves = new Set(changes.map((change) => change.access));
  if (moves.has('changed')) return 'changed';
  if (moves.has('widened') && moves.has('narrowed')) return 'widened and narrowed';
  if (moves.has('widened')) return 'widened';
  if (moves.has('narrowed')) return 'narrowed';
  return 'edited';
}

function changesOf(a: CompiledPolicyFile, b: CompiledPolicyFile): PolicyChange[] {
  const changes: PolicyChange[] = [];
  const roleA = roleOf(a);
  const roleB = roleOf(b);
  const field = (what: string, before: unknown, after: unknown): void => {
    if (show(before) !== show(after)) changes.push({ what: `${what}: ${show(before)} → ${show(after)}`, access: 'none' });
  };
  field('description', a.document.description, b.document.description);
  field('lint', a.document.lint, b.document.lint);
  // What a refused pipeline learns of why, not what it gets.
  field('diagnostics', a.document.diagnostics, b.document.diagnostics);
  if (roleA !== roleB) {
    const leaving = roleAccess(roleA, false);
    const arriving = roleAccess(roleB, true);
    const access = leaving === 'none' ? arriving : arriving === 'none' || arriving === leaving ? leaving : 'changed';
    changes.push({ what: `now ${describeRole(roleB)} (was ${describeRole(roleA)})`, access });
  }
  if (a.policy === undefined || b.policy === undefined) {
    if (show(a.document) !== show(b.document))
      changes.push({ what: `${a.policy === undefined ? 'the old' : 'the new'} version does not load`, access: 'changed' });
    return changes;
  }
  // Line and grant edits move access in the direction of the policy's role in the new state.
  const effect = roleB === 'allow' || roleB === 'deny' ? roleB : undefined;
  const toAccess = (widening: Widening): PolicyChange['access'] => {
    if (effect === undefined || widening === 'same') return 'none';
    if (widening === 'changed') return 'changed';
    // A deny policy that matches more takes access away.
    return (effect === 'allow') === (widening === 'wider') ? 'widened' : 'narrowed';
  };
  const policyA = a.policy;
  const policyB = b.policy;

  if (policyA.issuer.url !== policyB.issuer.url) changes.push({ what: `issuer: ${policyA.issuer.url} → ${policyB.issuer.url}`, access: toAccess('changed') });
  for (const change of issuerRuleChanges(policyA.issuer, policyB.issuer)) changes.push({ what: change.what, access: toAccess(change.widening) });
  if (policyA.subjectAudience !== policyB.subjectAudience || policyA.everyAudience !== policyB.everyAudience) {
    const audience = (policy: Policy): string => (policy.everyAudience ? 'every audience (a deny policy that names none)' : show(policy.subjectAudience));
    changes.push({ what: `subject_audience: ${audience(policyA)} → ${audience(policyB)}`, access: toAccess('changed') });
  }
  for (const change of lineChanges(policyA, policyB)) changes.push({ what: change.what, access: toAccess(change.widening) });
  if (show(a.document.match_actor) !== show(b.document.match_actor)) {
    changes.push({ what: `match_actor: ${show(a.document.match_actor)} → ${show(b.document.match_actor)}`, access: toAccess('changed') });
  }
  if (policyA.singleUse !== policyB.singleUse) {
    // Only a grant uses a token up: one no longer used up, copied from a job's log or artifact, is worth as much as the job's own.
    const widening = policyB.singleUse ? 'narrower' : 'wider';
    changes.push({ what: `single_use: ${policyA.singleUse} → ${policyB.singleUse}`, access: effect === 'allow' ? toAccess(widening) : 'none' });
  }
  if (effect === 'allow') {
    changes.push(...grantChanges(policyA, policyB).map((change) => ({ what: change.what, access: toAccess(change.widening) })));
    // Requests made through an upstream for the caller, and a cloud's token: rules and templates no direction is proven of.
    for (const part of ['proxy', 'cloud'] as const) {
      const [was, now] = [show(a.document.grant?.[part] ?? null), show(b.document.grant?.[part] ?? null)];
      if (was !== now) changes.push({ what: `grant.${part}: ${was} → ${now}`, access: 'changed' });
    }
  } else if (show(a.document.grant) !== show(b.document.grant)) changes.push({ what: 'grant changed', access: 'none' });
  return changes;
}

/**
 * The rules an issuer's tokens are verified by, which `issuer: { kind, url, … }` may change at the same URL: older tokens or
 * another algorithm accepted widen; another kind (its case folds, its claims) cannot be ranked.
 */
function issuerRuleChanges(a: TrustedIssuer, b: TrustedIssuer): { what: string; widening: Widening }[] {
  const changes: { what: string; widening: Widening }[] = [];
  if (a.preset.name !== b.preset.name) changes.push({ what: `issuer.kind: ${a.preset.name} → ${b.preset.name}`, widening: 'changed' });
  if (a.maxTokenAgeSeconds !== b.maxTokenAgeSeconds) {
    changes.push({
      what: `issuer.max_token_age: ${a.maxTokenAgeSeconds}s → ${b.maxTokenAgeSeconds}s`,
      widening: b.maxTokenAgeSeconds > a.maxTokenAgeSeconds ? 'wider' : 'narrower',
    });
  }
  return [...changes, ...listChanges('issuer.algorithms', a.algorithms, b.algorithms)];
}

/**
 * What a list that grants more the more it holds gained (wider) and lost (narrower). Looked up, not searched: a grant may
 * list thousands of scopes or audiences, each compared with the other side's.
 */
function listChanges(what: string, before: readonly string[], after: readonly string[]): { what: string; widening: Widening }[] {
  const [was, now] = [new Set(before), new Set(after)];
  return [
    ...after.filter((value) => !was.has(value)).map((item) => ({ what: `${what}: + ${item}`, widening: 'wider' as const })),
    ...before.filter((value) => !now.has(value)).map((item) => ({ what: `${what}: - ${item}`, widening: 'narrower' as const })),
  ];
}

/**
 * Each policy's lines share tries of their own (MAX_INCLUSION_TRIES), not the diff's: an author who spent a diff's tries on a large
 * edit of one file made a widening in another read `changed`, which the review's title counts as a change it cannot rank, not as
 * a widening. Only policies both sides hold are compared: a review of a repository's own policies holds at most POLICY_REVIEW_LIMITS.files (64) a side, so
 * at most 64 × 20,000 entries are tried (1.3 M, 0.4-0.7 s of CPU) in at most 64 × 2,000,000 steps of globs (MAX_INCLUSION_STEPS,
 * 50-90 ms each when globs keep hundreds of states live), and a fork's change to the central set compares no more
 * policies than the operator's base holds.
 */
function lineChanges(a: Policy, b: Policy): { what: string; widening: Widening }[] {
  const changes: { what: string; widening: Widening }[] = [];
  const budget: InclusionBudget = { tries: 0, steps: 0 };
  const before = new Map(a.conditions.map((condition) => [condition.key, condition]));
  const after = new Map(b.conditions.map((condition) => [condition.key, condition]));
  for (const [key, condition] of before) {
    const next = after.get(key);
    if (next === undefined) {
      changes.push({ what: `match.${key}: line ${show(condition.written)} removed`, widening: 'wider' });
      continue;
    }
    // A line written the same is not compared: it is the same, where a comparison of long lists may not show it (MAX_INCLUSION_TRIES).
    if (show(condition.written) === show(next.written)) continue;
    const widening = compareMatchers(condition.written, next.written, next.fold, key === 'sub' ? b.issuer.preset.subjectRefKeys : undefined, budget);
    changes.push({ what: `match.${key}: ${show(condition.written)} → ${show(next.written)}`, widening });
  }
  for (const [key, condition] of after) {
    if (!before.has(key)) changes.push({ what: `match.${key}: line ${show(condition.written)} added`, widening: 'narrower' });
  }
  return changes;
}

function grantChanges(a: Policy, b: Policy): { what: string; widening: Widening }[] {
  const changes: { what: string; widening: Widening }[] = [];
  const ga = a.grant;
  const gb = b.grant;
  if (ga === undefined || gb === undefined) return changes;
  const lists = (what: string, before: readonly string[], after: readonly string[]): void => {
    for (const change of listChanges(what, before, after)) changes.push(change);
  };
  lists('grant.audience', ga.audiences, gb.audiences);
  if (ga.requireDpop !== gb.requireDpop)
    changes.push({ what: `grant.require_dpop: ${ga.requireDpop} → ${gb.requireDpop}`, widening: gb.requireDpop ? 'narrower' : 'wider' });
  const audiences = new Set(gb.audiences);
  const sameAudiences = ga.audiences.length === gb.audiences.length && ga.audiences.every((audience) => audiences.has(audience));
  if (sameAudiences && ga.audiences[0] !== gb.audiences[0]) {
    changes.push({ what: `grant.audience: default ${show(ga.audiences[0])} → ${show(gb.audiences[0])}`, widening: 'changed' });
  }
  lists('grant.scopes', ga.scopes, gb.scopes);
  lists('grant.github.repositories', ga.github?.repositories ?? [], gb.github?.repositories ?? []);
  // A permission is one grant at a level: lowering it narrows, raising it widens (not a removal beside an addition).
  const levels = (what: string, before: Readonly<Record<string, string>> = {}, after: Readonly<Record<string, string>> = {}): void => {
    const rank = (level: string | undefined) => (level === undefined ? -1 : PERMISSION_LEVELS.indexOf(level as PermissionLevel));
    for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const [was, now] = [before[name], after[name]];
      if (was === now) continue;
      const change = was === undefined ? `+ ${name}:${now}` : now === undefined ? `- ${name}:${was}` : `${name}: ${was} → ${now}`;
      changes.push({ what: `${what}: ${change}`, widening: rank(now) > rank(was) ? 'wider' : 'narrower' });
    }
  };
  levels('grant.github.permissions', ga.github?.permissions, gb.github?.permissions);
  levels('grant.github.organization_permissions', ga.github?.organizationPermissions, gb.github?.organizationPermissions);
  if (ga.ttlSeconds !== gb.ttlSeconds) {
    changes.push({ what: `grant.ttl: ${ga.ttlSeconds}s → ${gb.ttlSeconds}s`, widening: gb.ttlSeconds > ga.ttlSeconds ? 'wider' : 'narrower' });
  }
  const template = (what: string, before: string | undefined, after: string | undefined): void => {
    if (before !== after) changes.push({ what: `${what}: ${show(before ?? null)} → ${show(after ?? null)}`, widening: 'changed' });
  };
  template('grant.subject', ga.subject?.source, gb.subject?.source);
  for (const name of new Set([...ga.claims.keys(), ...gb.claims.keys()])) {
    template(`grant.claims.${name}`, ga.claims.get(name)?.source, gb.claims.get(name)?.source);
  }
  return changes;
}
