import { REASONS, type Decision, type Reason } from '../errors/reasons.ts';
import type { AuditRecord } from './audit-event.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export const DECISIONS: readonly Decision[] = ['granted', 'denied', 'malformed', 'error'];

/** What auditors filter on. Every field narrows; none set means everything. */
export interface AuditFilter {
  /** Milliseconds since the epoch: from (inclusive) … until (exclusive). */
  readonly since?: number;
  readonly until?: number;
  readonly decisions?: readonly Decision[];
  readonly reasons?: readonly Reason[];
  /** The verified issuer, or for a token that did not verify the `iss` it claimed. */
  readonly issuer?: string;
  /** The verified subject, or for a token that did not verify the `sub` it claimed. */
  readonly subject?: string;
  /** `repository` (GitHub) or `project_path` (GitLab) of a verified token. */
  readonly repository?: string;
  /** The granting policy, or the first denying one. */
  readonly policy?: string;
  /** The issued token's `jti` or the subject token's. */
  readonly jti?: string;
  /** Proxied requests through this upstream (`proxy.upstream`), decision and outcome records alike. */
  readonly upstream?: string;
}

export interface AuditQuery extends AuditFilter {
  readonly limit: number;
  /** `desc`: newest first (the default for people); `asc`: chain order (exports, verification). */
  readonly order: 'asc' | 'desc';
  /** Continue where the page that returned this cursor (its `next`) stopped: a `seq`, or with `by: 'id'` an id; a merge's cursor holds one per chain. */
  readonly after?: string;
  /** The order within one chain: `seq` (chain order, the default) or `id` (time, exactly: what a merge of several chains reads). */
  readonly by?: 'seq' | 'id';
}

export interface AuditPage {
  readonly records: readonly AuditRecord[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: string;
}

export const BUCKETS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;
export type Bucket = keyof typeof BUCKETS;

export interface AuditStatsQuery extends AuditFilter {
  readonly since: number;
  readonly until: number;
  readonly bucket: Bucket;
  /** How many policies and repositories to rank (default STATS_TOP): a merge across shards asks each for all of them. */
  readonly top?: number;
}

export type DecisionCounts = Readonly<Record<Decision, number>>;

export interface AuditStats {
  readonly since: string;
  readonly until: string;
  readonly bucket: Bucket;
  readonly totals: DecisionCounts;
  /** Every bucket of the window, oldest first, empty ones included. */
  readonly series: readonly { readonly start: string; readonly counts: DecisionCounts }[];
  /** The busiest policies and repositories of the window (at most STATS_TOP each); null when none applied. */
  readonly by_policy: readonly { readonly policy: string | null; readonly counts: DecisionCounts }[];
  readonly by_repository: readonly { readonly repository: string | null; readonly counts: DecisionCounts }[];
}

export const QUERY_LIMITS = { defaultPage: 50, maxPage: 500, maxBuckets: 1000, valueChars: 1024 } as const;
export const STATS_TOP = 25;

/** A query parameter auditors got wrong: answered 400 invalid_request. */
export class AuditQueryError extends KeywayError {
  override readonly name = 'AuditQueryError';
  readonly code = 'audit_query_invalid';
}

/** A chain's `seq`, or on a sharded log one position per chain (the last id read there, or empty), joined by dots. */
const CURSOR = /^[0-9A-Z]{0,26}(\.[0-9A-Z]{0,26}){0,256}$/;
export const CURSOR_INVALID = 'cursor is not one this API returned';

/** Policies or repositories by their counts, busiest first, ties by name: at most `top` of them. */
export function rankCounts<Key extends string | null>(byKey: ReadonlyMap<Key, DecisionCounts>, top: number): [Key, DecisionCounts][] {
  const total = (counts: DecisionCounts) => counts.granted + counts.denied + counts.malformed + counts.error;
  return [...byKey].sort((a, b) => total(b[1]) - total(a[1]) || String(a[0]).localeCompare(String(b[0]))).slice(0, top);
}

const TEXT_FILTERS = ['issuer', 'subject', 'repository', 'policy', 'jti', 'upstream'] as const;
const RFC3339 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;
const AGO = /^(\d{1,6})([mhd])$/;

/** `2026-11-20T10:00:00Z`, `2026-11-20` (UTC midnight), or a span back from now: `90m`, `24h`, `7d`. */
export function parseTime(name: string, text: string, now: number): number {
  const ago = AGO.exec(text);
  if (ago !== null) return now - Number(ago[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 'm' | 'h' | 'd'];
  const time = RFC3339.test(text) ? Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text) : Number.NaN;
  if (Number.isNaN(time)) throw new AuditQueryError(`${name} must be an RFC 3339 time (2026-11-20T10:00:00Z), a date, or a span like 24h or 7d`);
  return time;
}

function single(params: URLSearchParams, name: string): string | undefined {
  const values = params.getAll(name).filter((value) => value !== '');
  if (values.length > 1) throw new AuditQueryError(`${name} must not be repeated`);
  const value = values[0];
  if (value !== undefined && value.length > QUERY_LIMITS.valueChars) throw new AuditQueryError(`${name} is too long`);
  return value;
}

function list<T extends string>(params: URLSearchParams, name: string, allowed: (value: string) => value is T): T[] | undefined {
  const values = params
    .getAll(name)
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value !== '');
  if (values.length === 0) return undefined;
  const unknown = values.find((value) => !allowed(value));
  if (unknown !== undefined) throw new AuditQueryError(`${name} ${JSON.stringify(unknown.slice(0, 64))} is not one of the documented values`);
  return [...new Set(values)] as T[];
}

const isDecision = (value: string): value is Decision => (DECISIONS as readonly string[]).includes(value);
const isReason = (value: string): value is Reason => Object.hasOwn(REASONS, value);

/** The filters of `/v1/audit/*`, the page's search form and the CLI, read from query parameters. */
export function parseAuditFilter(params: URLSearchParams, now: number): AuditFilter {
  const since = single(params, 'since');
  const until = single(params, 'until');
  const filter: Record<string, unknown> = {
    ...(since === undefined ? {} : { since: parseTime('since', since, now) }),
    ...(until === undefined ? {} : { until: parseTime('until', until, now) }),
  };
  const decisions = list(params, 'decision', isDecision);
  const reasons = list(params, 'reason', isReason);
  if (decisions !== undefined) filter['decisions'] = decisions;
  if (reasons !== undefined) filter['reasons'] = reasons;
  for (const name of TEXT_FILTERS) {
    const value = single(params, name);
    if (value !== undefined) filter[name] = value;
  }
  return filter as AuditFilter;
}

export function parseAuditQuery(params: URLSearchParams, now: number, order: 'asc' | 'desc' = 'desc'): AuditQuery {
  const limitText = single(params, 'limit');
  const limit = limitText === undefined ? QUERY_LIMITS.defaultPage : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxPage)
    throw new AuditQueryError(`limit must be an integer from 1 to ${QUERY_LIMITS.maxPage}`);
  const cursor = single(params, 'cursor');
  if (cursor !== undefined && !CURSOR.test(cursor)) throw new AuditQueryError(CURSOR_INVALID);
  return { ...parseAuditFilter(params, now), limit, order, ...(cursor === undefined ? {} : { after: cursor }) };
}

/** Stats default to the last 24 hours by hour; a window may hold at most QUERY_LIMITS.maxBuckets buckets. */
export function parseAuditStatsQuery(params: URLSearchParams, now: number): AuditStatsQuery {
  const filter = parseAuditFilter(params, now);
  const bucketText = single(params, 'bucket') ?? 'hour';
  if (!Object.hasOwn(BUCKETS, bucketText)) throw new AuditQueryError('bucket must be minute, hour or day');
  const bucket = bucketText as Bucket;
  const size = BUCKETS[bucket];
  const until = filter.until ?? now;
  const since = filter.since ?? until - (bucket === 'day' ? 30 : 1) * BUCKETS.day;
  if (since >= until) throw new AuditQueryError('since must be before until');
  if ((until - since) / size > QUERY_LIMITS.maxBuckets)
    throw new AuditQueryError(`the window holds more than ${QUERY_LIMITS.maxBuckets} ${bucket} buckets; narrow it or use a larger bucket`);
  return { ...filter, since, until, bucket };
}

export function zeroCounts(): Record<Decision, number> {
  return { granted: 0, denied: 0, malformed: 0, error: 0 };
}
