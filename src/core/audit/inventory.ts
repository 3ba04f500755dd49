import type { Decision } from '../errors/reasons.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { AuditQueryError, parseAuditFilter, type AuditFilter } from './audit-query.ts';

/**
 * Claims that name the tenant of a CI identity, first present wins: the owner id (GitHub,
 * Forgejo), the namespace id (GitLab), the organisation (Azure DevOps, Bitbucket, Buildkite,
 * CircleCI, Terraform). Read from the claims an audit record keeps.
 */
export const TENANT_CLAIMS = [
  'repository_owner_id',
  'namespace_id',
  'org_id',
  'workspaceUuid',
  'organization_id',
  'oidc.circleci.com/org-id',
  'terraform_organization_id',
] as const;

/** The records of a window, grouped by what the inventory and the unused-access analysis read. */
export interface UsageWindow {
  readonly since: number;
  readonly until: number;
}

export interface UsageQuery extends UsageWindow, Pick<AuditFilter, 'issuer' | 'repository' | 'policy' | 'decisions' | 'reasons'> {}

/** How far a log's usage roll-up has come: of the `records` the log keeps, `behind` are not rolled up yet. */
export interface UsageProgress {
  readonly behind: number;
  readonly records: number;
}

/**
 * A usage read refused while the roll-up is far behind the log (emptied by a migration that changed what it counts):
 * summing the backlog from the records would hold the serving thread or Durable Object for seconds to minutes, and an
 * answer from the roll-up alone would count too few. Upkeep catches it up a slice at a time; the read is tried again.
 */
export class UsageCatchingUpError extends KeywayError {
  override readonly name = 'UsageCatchingUpError';
  readonly code = 'audit_usage_catching_up';
  /** Seconds to try again after. */
  static readonly RETRY_AFTER_SECONDS = 30;

  readonly progress: UsageProgress;

  constructor(progress: UsageProgress) {
    super(
      `the usage roll-up is catching up with the audit log: ${progress.behind} of its ${progress.records} records are not rolled up yet; ` +
        'usage (the inventory, policy suggest, stale_grant) is answered once it has',
    );
    this.progress = progress;
  }

  /** Several logs' progress as one (the Workers shards). */
  static of(errors: readonly UsageCatchingUpError[]): UsageCatchingUpError {
    return new UsageCatchingUpError({
      behind: errors.reduce((sum, error) => sum + error.progress.behind, 0),
      records: errors.reduce((sum, error) => sum + error.progress.records, 0),
    });
  }
}

/**
 * One group of records with the same identity, policy, outcome and grant. Groups add up: a log
 * split into shards answers with each shard's groups, concatenated.
 */
export type UsageRow = {
  readonly issuer: string | null;
  readonly tenant: string | null;
  readonly repository: string | null;
  /** Only when there is no repository: the subject then names the identity. */
  readonly subject: string | null;
  /** The granting policy, or the first denying one. */
  readonly policy_id: string | null;
  readonly decision: Decision;
  readonly reason: string;
  /** JSON texts, as recorded: the issued scopes and audiences, the GitHub token's permissions and repositories. */
  readonly scopes: string | null;
  readonly audiences: string | null;
  readonly github_permissions: string | null;
  readonly github_repositories: string | null;
  readonly count: number;
  /** Milliseconds since the epoch. */
  readonly first: number;
  readonly last: number;
};

/** Per granting policy and claim: the least and greatest text value its grants carried, and how many carried one. Adds up like UsageRow. */
export type ClaimUsageRow = {
  readonly policy_id: string;
  readonly claim: string;
  readonly least: string;
  readonly greatest: string;
  readonly count: number;
};

export interface Count {
  readonly value: string;
  readonly count: number;
}

/** A CI identity seen in the window. Nothing in it is a token or a token's hash. */
export interface InventoryIdentity {
  readonly issuer: string | null;
  readonly tenant: string | null;
  readonly repository: string | null;
  readonly subject: string | null;
  readonly first_seen: string;
  readonly last_seen: string;
  readonly grants: number;
  readonly denials: number;
  /** Granting policies, with how many grants each. */
  readonly policies: readonly Count[];
  readonly scopes: readonly Count[];
  readonly audiences: readonly Count[];
  /** `contents:write`, … */
  readonly github_permissions: readonly Count[];
  readonly github_repositories: readonly Count[];
  /** Reason codes of the refusals. */
  readonly denial_reasons: readonly Count[];
}

export const INVENTORY_SORTS = ['last_seen', 'first_seen', 'grants', 'denials', 'identity'] as const;
export type InventorySort = (typeof INVENTORY_SORTS)[number];

export interface InventoryQuery extends UsageQuery {
  readonly sort: InventorySort;
  readonly order: 'asc' | 'desc';
}

export interface Inventory {
  readonly since: string;
  readonly until: string;
  readonly identities: readonly InventoryIdentity[];
}

export const INVENTORY_DEFAULT_DAYS = 30;
const DAY = 86_400_000;

/** `since`/`until` and the audit filters, `sort` and `order`; the window is the last 30 days unless given. */
export function parseInventoryQuery(params: URLSearchParams, now: number): InventoryQuery {
  const unsupported = ['subject', 'jti', 'upstream'].find((name) => params.has(name));
  if (unsupported !== undefined)
    throw new AuditQueryError(`the inventory filters on since, until, issuer, repository, policy, decision and reason, not ${unsupported}`);
  const rest = new URLSearchParams([...params].filter(([name]) => name !== 'sort' && name !== 'order'));
  const { subject: _subject, jti: _jti, upstream: _upstream, ...filter } = parseAuditFilter(rest, now);
  const sort = params.get('sort') ?? 'last_seen';
  if (!(INVENTORY_SORTS as readonly string[]).includes(sort)) throw new AuditQueryError(`sort must be one of ${INVENTORY_SORTS.join(', ')}`);
  const order = params.get('order') ?? (sort === 'identity' ? 'asc' : 'desc');
  if (order !== 'asc' && order !== 'desc') throw new AuditQueryError('order must be asc or desc');
  const until = filter.until ?? now;
  const since = filter.since ?? until - INVENTORY_DEFAULT_DAYS * DAY;
  if (since >= until) throw new AuditQueryError('since must be before until');
  return { ...filter, since, until, sort: sort as InventorySort, order };
}

function parsed<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);

/** The grant elements a group of records was given: scopes, audiences, `name:level` GitHub permissions, GitHub repositories. */
export function grantedElements(row: UsageRow): { scopes: string[]; audiences: string[]; githubPermissions: string[]; githubRepositories: string[] } {
  const permissions = parsed<Record<string, unknown>>(row.github_permissions, {});
  return {
    scopes: strings(parsed(row.scopes, [])),
    audiences: strings(parsed(row.audiences, [])),
    githubPermissions: Object.entries(typeof permissions === 'object' && permissions !== null ? permissions : {}).map(
      ([name, level]) => `${name}:${String(level)}`,
    ),
    githubRepositories: strings(parsed(row.github_repositories, [])),
  };
}

const add = (counts: Map<string, number>, value: string | null, n: number) => {
  if (value !== null) counts.set(value, (counts.get(value) ?? 0) + n);
};
const sorted = (counts: Map<string, number>): Count[] =>
  [...counts].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));

/** The identity a group belongs to: issuer, tenant, and repository or else subject. */
export const identityKey = (row: Pick<UsageRow, 'issuer' | 'tenant' | 'repository' | 'subject'>): string =>
  JSON.stringify([row.issuer, row.tenant, row.repository, row.repository === null ? row.subject : null]);

/** Every identity of the window, from the groups of one or more shards, sorted as asked. */
export function buildInventory(rows: readonly UsageRow[], query: InventoryQuery): Inventory {
  type Tally = {
    issuer: string | null;
    tenant: string | null;
    repository: string | null;
    subject: string | null;
    first: number;
    last: number;
    grants: number;
    denials: number;
    counts: Record<'policies' | 'scopes' | 'audiences' | 'github_permissions' | 'github_repositories' | 'denial_reasons', Map<string, number>>;
  };
  const tallies = new Map<string, Tally>();
  for (const row of rows) {
    const key = identityKey(row);
    let tally = tallies.get(key);
    if (tally === undefined) {
      tally = {
        issuer: row.issuer,
        tenant: row.tenant,
        repository: row.repository,
        subject: row.repository === null ? row.subject : null,
        first: row.first,
        last: row.last,
        grants: 0,
        denials: 0,
        counts: {
          policies: new Map(),
          scopes: new Map(),
          audiences: new Map(),
          github_permissions: new Map(),
          github_repositories: new Map(),
          denial_reasons: new Map(),
        },
      };
      tallies.set(key, tally);
    }
    tally.first = Math.min(tally.first, row.first);
    tally.last = Math.max(tally.last, row.last);
    if (row.decision === 'granted') {
      tally.grants += row.count;
      add(tally.counts.policies, row.policy_id, row.count);
      const granted = grantedElements(row);
      for (const value of granted.scopes) add(tally.counts.scopes, value, row.count);
      for (const value of granted.audiences) add(tally.counts.audiences, value, row.count);
      for (const value of granted.githubPermissions) add(tally.counts.github_permissions, value, row.count);
      for (const value of granted.githubRepositories) add(tally.counts.github_repositories, value, row.count);
    } else {
      tally.denials += row.count;
      add(tally.counts.denial_reasons, row.reason, row.count);
    }
  }
  const identities = [...tallies.values()].map(
    (tally): InventoryIdentity => ({
      issuer: tally.issuer,
      tenant: tally.tenant,
      repository: tally.repository,
      subject: tally.subject,
      first_seen: new Date(tally.first).toISOString(),
      last_seen: new Date(tally.last).toISOString(),
      grants: tally.grants,
      denials: tally.denials,
      policies: sorted(tally.counts.policies),
      scopes: sorted(tally.counts.scopes),
      audiences: sorted(tally.counts.audiences),
      github_permissions: sorted(tally.counts.github_permissions),
      github_repositories: sorted(tally.counts.github_repositories),
      denial_reasons: sorted(tally.counts.denial_reasons),
    }),
  );
  const name = (identity: InventoryIdentity) => `${identity.issuer ?? ''} ${identity.tenant ?? ''} ${identity.repository ?? identity.subject ?? ''}`;
  const compare: Record<InventorySort, (a: InventoryIdentity, b: InventoryIdentity) => number> = {
    last_seen: (a, b) => a.last_seen.localeCompare(b.last_seen),
    first_seen: (a, b) => a.first_seen.localeCompare(b.first_seen),
    grants: (a, b) => a.grants - b.grants,
    denials: (a, b) => a.denials - b.denials,
    identity: (a, b) => name(a).localeCompare(name(b)),
  };
  const direction = query.order === 'asc' ? 1 : -1;
  identities.sort((a, b) => direction * compare[query.sort](a, b) || name(a).localeCompare(name(b)));
  return { since: new Date(query.since).toISOString(), until: new Date(query.until).toISOString(), identities };
}
