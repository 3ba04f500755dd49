import { parseDocument } from 'yaml';
import { grantedElements, type ClaimUsageRow, type UsageRow } from '../audit/inventory.ts';
import { REGISTERED_CLAIMS } from '../verify/issuer-preset.ts';
import { diffPolicies, type PolicyDiff } from './diff/diff-policies.ts';
import { wideningDiffs } from './diff/render-diff-markdown.ts';
import { PERMISSION_LEVELS } from './github-permissions.ts';
import { compilePolicyFiles, type CompiledPolicyFile, type PolicyFile, type PolicyLoadOptions } from './load-policies.ts';
import type { Policy } from './policy.ts';

/** What the audit log says about a window: its usage groups and the claims of its grants. */
export interface UsageEvidence {
  readonly since: number;
  readonly until: number;
  readonly rows: readonly UsageRow[];
  readonly claims: readonly ClaimUsageRow[];
}

export type GrantElement = 'policy' | 'scope' | 'audience' | 'github_permission' | 'github_repository' | 'claim';

/** One grant element of one allow policy, and what the window shows of it. */
export interface UsageFinding {
  readonly policy: string;
  readonly file: string;
  readonly element: GrantElement;
  readonly value: string;
  /** `used`; `unused` (never granted in the window); `narrower` (only a lower GitHub level was); `pin` (every grant had this claim value). */
  readonly status: 'used' | 'unused' | 'narrower' | 'pin';
  /** Grants in the window that carried it. */
  readonly count: number;
  readonly evidence: string;
}

export interface NarrowingSuggestion {
  readonly findings: readonly UsageFinding[];
  /** The policy files with the suggested changes, for the ones that change. */
  readonly files: readonly PolicyFile[];
  /** What the changes do to access, by `keyway policy diff`'s rules: narrowed, never widened. */
  readonly diffs: readonly PolicyDiff[];
}

/** Fewer grants than this prove nothing constant about a claim. */
export const MIN_GRANTS_FOR_PIN = 3;

const DAY = 86_400_000;
const sum = (rows: readonly UsageRow[]) => rows.reduce((total, row) => total + row.count, 0);

/** `in the 90 days from 2026-09-04`: the window, for evidence. */
export function windowText(evidence: Pick<UsageEvidence, 'since' | 'until'>): string {
  const days = Math.round((evidence.until - evidence.since) / DAY);
  return `in the ${days} day${days === 1 ? '' : 's'} from ${new Date(evidence.since).toISOString().slice(0, 10)}`;
}

/** A match line that already admits exactly one value. */
const pinsOneValue = (written: unknown) => typeof written !== 'object' || (Array.isArray(written) && written.length === 1 && typeof written[0] !== 'object');

/**
 * What the window's usage says about each allow policy's grant, and the policies narrowed to it:
 * unused scopes, audiences, GitHub permissions and repositories removed, GitHub levels lowered to
 * the ones used, and a claim every grant carried with the same value pinned. Only policies that
 * granted something in the window are edited (one that granted nothing is reported, not removed),
 * a grant never loses its last audience, scope, permission or repository, and the result is held
 * to `keyway policy diff`: a suggestion that would widen anything is dropped.
 */
export function suggestNarrowing(files: readonly PolicyFile[], options: PolicyLoadOptions, evidence: UsageEvidence): NarrowingSuggestion {
  const compilation = compilePolicyFiles(files, options);
  const findings: UsageFinding[] = [];
  const edited = new Map<string, string>();
  const span = windowText(evidence);
  for (const entry of compilation.files) {
    const policy = entry.policy;
    if (policy === undefined || entry.inactive !== undefined || policy.effect !== 'allow' || policy.mode !== 'enforce' || policy.grant === undefined) continue;
    const source = files.find((file) => file.path === entry.file);
    if (source === undefined) continue;
    const usage = grantUsage(policy, entry.file, evidence.rows, span);
    findings.push(...usage.findings);
    if (usage.grants === 0) continue;
    const add: Add = (element, value, status, count, text) =>
      findings.push({ policy: policy.id, file: entry.file, element, value, status, count, evidence: text });
    const edits = usage.edits;
    const pins = pinsFor(entry, policy, evidence.claims, usage.grants, add, span);
    if (edits.length + pins.length === 0) continue;
    const document = parseDocument(source.text);
    for (const [path, value] of [...edits, ...pins]) {
      if (value === undefined) document.deleteIn(path);
      else document.setIn(path, value);
    }
    edited.set(entry.file, document.toString());
  }
  const after = files.map((file) => ({ path: file.path, text: edited.get(file.path) ?? file.text }));
  const diffs = diffPolicies(compilation, compilePolicyFiles(after, options)).filter((diff) => diff.status !== 'edited');
  // Never widen: a change the diff cannot prove narrowing is left out, with its file.
  const widening = new Set(wideningDiffs(diffs).map((diff) => diff.id));
  const kept = compilation.files.filter((entry) => edited.has(entry.file) && !widening.has(entry.id)).map((entry) => entry.file);
  return {
    findings,
    files: after.filter((file) => kept.includes(file.path)),
    diffs: diffs.filter((diff) => !widening.has(diff.id)),
  };
}

type Add = (element: GrantElement, value: string, status: UsageFinding['status'], count: number, text: string) => void;
type Edit = [readonly (string | number)[], unknown];

/**
 * What one allow policy's grant was used for, from the window's usage groups (`span` says which
 * window, for the evidence): the policy and each grant element with its status, and the edits that
 * narrow the grant to what was used. The `stale_grant` alert rule reads the `unused` ones.
 */
export function grantUsage(policy: Policy, file: string, rows: readonly UsageRow[], span: string): { grants: number; findings: UsageFinding[]; edits: Edit[] } {
  const findings: UsageFinding[] = [];
  const add: Add = (element, value, status, count, text) => findings.push({ policy: policy.id, file, element, value, status, count, evidence: text });
  const grants = rows.filter((row) => row.decision === 'granted' && row.policy_id === policy.id);
  const total = sum(grants);
  if (total === 0) {
    add('policy', policy.id, 'unused', 0, `granted nothing ${span}: consider removing it`);
    return { grants: 0, findings, edits: [] };
  }
  add('policy', policy.id, 'used', total, `${total} grant${total === 1 ? '' : 's'} ${span}`);
  return { grants: total, findings, edits: narrowGrant(policy, grants, add, span) };
}

function narrowGrant(policy: Policy, grants: readonly UsageRow[], add: Add, span: string): Edit[] {
  const grant = policy.grant as NonNullable<Policy['grant']>;
  const counts = {
    scope: new Map<string, number>(),
    audience: new Map<string, number>(),
    permission: new Map<string, number>(),
    repository: new Map<string, number>(),
  };
  const bump = (map: Map<string, number>, value: string, n: number) => map.set(value, (map.get(value) ?? 0) + n);
  for (const row of grants) {
    const granted = grantedElements(row);
    for (const scope of granted.scopes) bump(counts.scope, scope, row.count);
    for (const audience of granted.audiences) bump(counts.audience, audience, row.count);
    for (const permission of granted.githubPermissions) bump(counts.permission, permission, row.count);
    for (const repository of granted.githubRepositories) bump(counts.repository, repository.toLowerCase(), row.count);
  }
  const edits: Edit[] = [];
  /** Keeps the used values (in written order); every value unused is reported, and dropped unless none would be left. */
  const keep = (element: GrantElement, written: readonly string[], used: (value: string) => number, path: readonly string[], asList = true) => {
    const kept = written.filter((value) => used(value) > 0);
    for (const value of written) {
      const n = used(value);
      add(element, value, n > 0 ? 'used' : 'unused', n, n > 0 ? `${n} grant${n === 1 ? '' : 's'} ${span}` : `never granted ${span}: remove it`);
    }
    if (kept.length > 0 && kept.length < written.length) edits.push([path, asList || kept.length > 1 ? kept : kept[0]]);
  };
  if (grant.audiences.length > 0) {
    keep('scope', grant.scopes, (scope) => counts.scope.get(scope) ?? 0, ['grant', 'scopes']);
    keep('audience', grant.audiences, (audience) => counts.audience.get(audience) ?? 0, ['grant', 'audience'], false);
  }
  const github = grant.github;
  if (github !== undefined) {
    // Issued repositories are names; a grant writes `name` or `owner/name`.
    keep('github_repository', github.repositories, (name) => counts.repository.get((name.split('/').at(-1) ?? '').toLowerCase()) ?? 0, [
      'grant',
      'github',
      'repositories',
    ]);
    for (const [name, level] of Object.entries(github.permissions)) {
      const used = PERMISSION_LEVELS.filter((candidate) => (counts.permission.get(`${name}:${candidate}`) ?? 0) > 0);
      const n = used.reduce((total, candidate) => total + (counts.permission.get(`${name}:${candidate}`) ?? 0), 0);
      const highest = used.at(-1);
      if (highest === undefined) {
        add('github_permission', `${name}:${level}`, 'unused', 0, `never granted ${span}: remove it`);
        if (Object.values(github.permissions).length > 1) edits.push([['grant', 'github', 'permissions', name], undefined]);
      } else if (PERMISSION_LEVELS.indexOf(highest) < PERMISSION_LEVELS.indexOf(level)) {
        add('github_permission', `${name}:${level}`, 'narrower', n, `only ${name}:${highest} was granted ${span}: lower it`);
        edits.push([['grant', 'github', 'permissions', name], highest]);
      } else {
        add('github_permission', `${name}:${level}`, 'used', n, `${n} grant${n === 1 ? '' : 's'} ${span}`);
      }
    }
  }
  return edits;
}

function pinsFor(entry: CompiledPolicyFile, policy: Policy, claims: readonly ClaimUsageRow[], total: number, add: Add, span: string): Edit[] {
  if (total < MIN_GRANTS_FOR_PIN) return [];
  const spread = new Map<string, { least: string; greatest: string; count: number }>();
  for (const row of claims.filter((candidate) => candidate.policy_id === policy.id)) {
    const seen = spread.get(row.claim);
    spread.set(
      row.claim,
      seen === undefined
        ? { least: row.least, greatest: row.greatest, count: row.count }
        : {
            least: [row.least, seen.least].sort()[0] as string,
            greatest: [row.greatest, seen.greatest].sort()[1] as string,
            count: seen.count + row.count,
          },
    );
  }
  const edits: Edit[] = [];
  for (const [claim, { least, greatest, count }] of [...spread].sort(([a], [b]) => a.localeCompare(b))) {
    if (least !== greatest || count !== total || (REGISTERED_CLAIMS as readonly string[]).includes(claim)) continue;
    const line = policy.conditions.find((condition) => condition.key === claim);
    const written = entry.document.match?.[claim];
    // A line that admits one value already pins it; a pin must be a value the line accepts, so it only narrows.
    if ((written !== undefined && pinsOneValue(written)) || (line !== undefined && !line.matcher.test(least))) continue;
    add('claim', `${claim}: ${least}`, 'pin', count, `every one of the ${count} grants ${span} had ${claim}: ${JSON.stringify(least)}: pin it`);
    edits.push([['match', claim], least]);
  }
  return edits;
}
