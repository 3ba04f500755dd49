import {
  TENANT_CLAIMS,
  UsageCatchingUpError,
  type ClaimUsageRow,
  type UsageProgress,
  type UsageQuery,
  type UsageRow,
  type UsageWindow,
} from '../core/audit/inventory.ts';
import { HOUSEKEEPING_REASONS } from '../core/errors/reasons.ts';
import type { SqlDatabase, SqlValue } from './sql-database.ts';

/**
 * The usage roll-up (issue 22): the audit records grouped per UTC day by identity, policy, outcome
 * and grant, and per day and policy the least and greatest value of each claim of its grants. Kept
 * incrementally from the log (records up to `audit_usage_state.seq`), never from the append path;
 * the records are the truth, the roll-up a cache of sums over them. Made by this migration.
 */
/**
 * Empties the roll-up, which the next read rebuilds from the records: the migration of a release that changes what it
 * counts, so no day of it keeps sums made the old way (which `audit verify` would find differing from the records).
 */
export const AUDIT_USAGE_REBUILD = 'DELETE FROM audit_usage; DELETE FROM audit_usage_claims; DELETE FROM audit_usage_state;';

export const AUDIT_USAGE_MIGRATION = `
  CREATE TABLE audit_usage (
    day INTEGER NOT NULL,
    grp TEXT NOT NULL,
    issuer TEXT,
    tenant TEXT,
    repository TEXT,
    subject TEXT,
    policy_id TEXT,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    scopes TEXT,
    audiences TEXT,
    github_permissions TEXT,
    github_repositories TEXT,
    count INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (day, grp)
  ) WITHOUT ROWID;
  CREATE TABLE audit_usage_claims (
    day INTEGER NOT NULL,
    policy_id TEXT NOT NULL,
    claim TEXT NOT NULL,
    least TEXT NOT NULL,
    greatest TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, policy_id, claim)
  ) WITHOUT ROWID;
  CREATE TABLE audit_usage_state (
    slot INTEGER PRIMARY KEY CHECK (slot = 1),
    seq INTEGER NOT NULL
  );
`;

const DAY = 86_400_000;
/** Records rolled up per transaction, so one refresh never holds the database for long. */
export const ROLLUP_BATCH = 5000;
/**
 * How long one query may spend bringing the roll-up up to date before it reads the rest raw. Short:
 * on Workers the Durable Object that appends runs it, so exchanges wait meanwhile.
 */
const ROLLUP_BUDGET_MS = 250;
/**
 * The most records a usage read leaves to be read raw from the log: past it (a roll-up emptied by a migration, or one no
 * upkeep kept up) a read is refused as catching up (UsageCatchingUpError) rather than summing the backlog from the records
 * on the thread (Node) or in the Durable Object (Workers) that serves, which takes seconds per 100,000 records.
 */
export const READ_BACKLOG_MAX = 20_000;
/** One round of upkeep's share of rolling up: short, so the exchanges the same thread or object serves interleave. */
export const UPKEEP_SLICE_MS = 100;
/** The pause between two slices while records are left: catching up takes about a third of the thread or object meanwhile. */
export const USAGE_SLICE_PAUSE_MS = 200;
/**
 * How Node's audit writer thread keeps the roll-up between its commits (audit-writer.ts): one small batch at a time, about
 * 3 ms of 200 records (some 14 µs each), the next 20 ms later while records are left, else two seconds later, so commits
 * wait at most one batch, the records a read meets stay far under READ_BACKLOG_MAX at the ~3,000 a second one writer
 * takes, and a backlog is caught up at some 8,000 records a second.
 */
export const NODE_USAGE_TICK = { records: 200, pauseMs: 20, idleMs: 2000 } as const;

/** How a store rolls up: records per transaction, and the most a read may sum from the records. */
export interface UsageRollUpLimits {
  readonly batch: number;
  readonly readBacklog: number;
}

export const USAGE_ROLLUP_LIMITS: UsageRollUpLimits = { batch: ROLLUP_BATCH, readBacklog: READ_BACKLOG_MAX };

const claim = (name: string) => `json_extract(event, '$.claims."${name}"')`;
const TENANT = `coalesce(${TENANT_CLAIMS.map(claim).join(', ')})`;
/** Only grants carry grant columns, and the subject only where no repository names the identity: groups stay few. */
const granted = (path: string) => `CASE WHEN decision = 'granted' THEN json_extract(event, '${path}') END`;
/**
 * The issuer and subject the token proved, never the index's (which for a token that did not verify are the ones it claimed):
 * anyone can send a token claiming a real identity, and its refusal must not count as that identity's. Such refusals
 * group under no identity at all.
 */
const VERIFIED_ISSUER = "json_extract(event, '$.issuer')";
const GROUP_COLUMNS = `${VERIFIED_ISSUER} AS issuer, ${TENANT} AS tenant, repository,
  CASE WHEN repository IS NULL THEN json_extract(event, '$.subject') END AS subject, policy_id, decision, reason,
  ${granted('$.issued.scope')} AS scopes, ${granted('$.issued.aud')} AS audiences,
  CASE WHEN decision = 'granted' THEN json_extract(github, '$.permissions') END AS github_permissions,
  CASE WHEN decision = 'granted' THEN json_extract(github, '$.repositories') END AS github_repositories`;
/** The reasons of housekeeping records (HOUSEKEEPING_REASONS), as an SQL list: constants, never a caller's text. */
export const HOUSEKEEPING_SQL = HOUSEKEEPING_REASONS.map((reason) => `'${reason}'`).join(', ');
/**
 * The log as grants: a row per record, but for a GitHub token map (issue 19) a row per owner's token, its policy the one
 * that granted that owner (`github_tokens[].granted_by`), so each policy's use and each token's permissions are counted.
 * A proxied request is its decision record: the records that follow it (`proxy.decision_id`: its outcome, a token minted
 * after its deadline) are of the same grant, so they count neither as another grant nor, when the upstream failed, as a refusal.
 * Housekeeping (an /audit sign-in, a revocation, an introspection) grants no access: not counted, as no one's grant.
 */
const GRANT_ROWS = `(
  SELECT seq, time, repository, policy_id, decision, reason, event, json_extract(event, '$.github') AS github FROM audit_events
    WHERE (decision <> 'granted' OR json_type(event, '$.github_tokens') IS NULL) AND json_type(event, '$.proxy.decision_id') IS NULL
      AND reason NOT IN (${HOUSEKEEPING_SQL})
  UNION ALL
  SELECT seq, time, repository, json_extract(token.value, '$.granted_by'), decision, reason, event, token.value
    FROM audit_events, json_each(audit_events.event, '$.github_tokens') AS token WHERE decision = 'granted'
)`;
const GROUPED = 'issuer, tenant, repository, subject, policy_id, decision, reason, scopes, audiences, github_permissions, github_repositories';

type Where = { readonly conditions: readonly string[]; readonly params: readonly SqlValue[] };
const sqlWhere = (conditions: readonly string[]) => (conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`);

/** The UTC day of the log's oldest record (NULL when it holds none): what pruning has left. */
const FIRST_DAY = `SELECT min(time) / ${DAY} FROM audit_events`;
/** The roll-up's rows of the records `where` picks (a condition on seq and time, with `?` parameters), per day and group. */
const usageSums = (where: string) =>
  `SELECT day, json_array(${GROUPED}) AS grp, ${GROUPED}, count(*) AS count, min(time) AS first, max(time) AS last
    FROM (SELECT time / ${DAY} AS day, time, ${GROUP_COLUMNS} FROM ${GRANT_ROWS} WHERE ${where})
    WHERE true GROUP BY day, ${GROUPED}`;
/** The claim roll-up's rows of the grants `where` picks, per day, granting policy and claim. */
const claimSums = (where: string) =>
  `SELECT time / ${DAY} AS day, policy_id, claims.key AS claim, min(claims.value) AS least, max(claims.value) AS greatest, count(*) AS count
    FROM ${GRANT_ROWS} AS grants, json_each(grants.event, '$.claims') AS claims
    WHERE ${where} AND decision = 'granted' AND policy_id IS NOT NULL AND claims.type = 'text'
    GROUP BY 1, 2, 3`;

function firstDay(db: SqlDatabase): number | undefined {
  return db.all<{ day: number | null }>(`SELECT (${FIRST_DAY}) AS day`)[0]?.day ?? undefined;
}

function rolledUpTo(db: SqlDatabase): number {
  return db.all<{ seq: number }>('SELECT seq FROM audit_usage_state WHERE slot = 1')[0]?.seq ?? 0;
}

/**
 * The records the roll-up does not hold yet: those after its watermark. Kept records are contiguous in seq (pruning takes the
 * oldest), so it is the head's seq less the watermark, or less the seq before the first kept record when pruning passed it.
 */
export function usageBacklog(db: SqlDatabase): UsageProgress {
  return db.read(() => {
    const seq = rolledUpTo(db);
    const [ends] = db.all<{ first: number | null; head: number | null }>('SELECT min(seq) AS first, max(seq) AS head FROM audit_events');
    if (ends?.head == null || ends.first == null) return { behind: 0, records: 0 };
    return { behind: Math.max(0, ends.head - Math.max(seq, ends.first - 1)), records: ends.head - ends.first + 1 };
  });
}

/** Rolls up the next batch of records; false once nothing is left. */
function rollUpBatch(db: SqlDatabase, batch: number): boolean {
  return db.transaction(() => {
    const from = rolledUpTo(db);
    const [upper] = db.all<{ seq: number | null }>('SELECT max(seq) AS seq FROM (SELECT seq FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?)', [
      from,
      batch,
    ]);
    const to = upper?.seq ?? null;
    if (to === null) return false;
    db.run(
      `INSERT INTO audit_usage (day, grp, ${GROUPED}, count, first, last) ${usageSums('seq > ? AND seq <= ?')}
        ON CONFLICT (day, grp) DO UPDATE SET count = count + excluded.count, first = min(first, excluded.first), last = max(last, excluded.last)`,
      [from, to],
    );
    db.run(
      `INSERT INTO audit_usage_claims (day, policy_id, claim, least, greatest, count) ${claimSums('seq > ? AND seq <= ?')}
        ON CONFLICT (day, policy_id, claim) DO UPDATE SET
          least = min(least, excluded.least), greatest = max(greatest, excluded.greatest), count = count + excluded.count`,
      [from, to],
    );
    db.run('INSERT INTO audit_usage_state (slot, seq) VALUES (1, ?) ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq', [to]);
    dropPrunedUsage(db);
    return true;
  });
}

/**
 * Drops the roll-up's days the log no longer holds (pruned), and all of it once no record is left: run where records are
 * pruned, so no day of the roll-up outlives its records until the next refresh.
 */
export function dropPrunedUsage(db: SqlDatabase): void {
  for (const table of ['audit_usage', 'audit_usage_claims']) db.run(`DELETE FROM ${table} WHERE day < coalesce((${FIRST_DAY}), 9e15)`);
}

/**
 * Where the roll-up is not what the records up to `audit_usage_state.seq` sum to, or undefined when it is: the inventory
 * (`/v1/inventory`, `keyway policy suggest`, the stale-grant alert) reads it instead of the records, and the chain does not
 * cover it. The log's first day is left out, as the inventory reads it from the records (rolledDays); every other day
 * must match row for row, and no day before it may remain. `audit verify` holds a data directory to it.
 */
export function usageMismatch(db: SqlDatabase): string | undefined {
  // A database from before the roll-up (schema 11) has nothing to hold to the records.
  if (db.all("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_usage_state'").length === 0) return undefined;
  // One read: a broker serving from the file may roll up or prune between two statements.
  return db.read(() => rollUpMismatch(db));
}

function rollUpMismatch(db: SqlDatabase): string | undefined {
  const seq = rolledUpTo(db);
  const day = firstDay(db);
  if (day === undefined) {
    const [left] = db.all<{ n: number }>('SELECT (SELECT count(*) FROM audit_usage) + (SELECT count(*) FROM audit_usage_claims) AS n');
    return (left?.n ?? 0) > 0 ? 'the usage roll-up (the inventory) holds days of a log that holds no records' : undefined;
  }
  // The log's first day is read from the records, never from the roll-up (rolledDays): its sums are not held.
  const from = day + 1;
  const before = db.all<{ day: number }>('SELECT day FROM audit_usage WHERE day < ? UNION SELECT day FROM audit_usage_claims WHERE day < ? LIMIT 1', [
    day,
    day,
  ]);
  if (before[0] !== undefined) return `the usage roll-up (the inventory) holds day ${isoDay(before[0].day)}, before the log's first record`;
  const rebuilt = `SELECT day, grp, count, first, last FROM (${usageSums('seq <= ?')}) WHERE day >= ?`;
  const stored = 'SELECT day, grp, count, first, last FROM audit_usage WHERE day >= ?';
  const [usage] = db.all<{ day: number; grp: string }>(
    `SELECT day, grp FROM (${rebuilt} EXCEPT ${stored}) UNION ALL SELECT day, grp FROM (${stored} EXCEPT ${rebuilt}) LIMIT 1`,
    [seq, from, from, from, seq, from],
  );
  if (usage !== undefined) return `the usage roll-up (the inventory) of ${isoDay(usage.day)} differs from the records for ${usage.grp}`;
  const rebuiltClaims = `SELECT day, policy_id, claim, least, greatest, count FROM (${claimSums(`seq <= ? AND time / ${DAY} >= ?`)})`;
  const storedClaims = 'SELECT day, policy_id, claim, least, greatest, count FROM audit_usage_claims WHERE day >= ?';
  const [claims] = db.all<{ day: number; policy_id: string; claim: string }>(
    `SELECT day, policy_id, claim FROM (${rebuiltClaims} EXCEPT ${storedClaims})
      UNION ALL SELECT day, policy_id, claim FROM (${storedClaims} EXCEPT ${rebuiltClaims}) LIMIT 1`,
    [seq, from, from, from, seq, from],
  );
  if (claims !== undefined) {
    return `the usage roll-up (the inventory) of ${isoDay(claims.day)} differs from the records for claim ${claims.claim} of policy ${claims.policy_id}`;
  }
  return undefined;
}

const isoDay = (day: number): string => new Date(day * DAY).toISOString().slice(0, 10);

/**
 * Brings the roll-up up to date, a batch at a time for at most `budgetMs` (one batch at least). A read-only connection
 * (`keyway inventory --data-dir`) cannot: it reads what the broker rolled up and the rest raw.
 */
export function refreshUsage(db: SqlDatabase, options: { readonly budgetMs?: number; readonly batch?: number; readonly now?: () => number } = {}): void {
  const now = options.now ?? Date.now;
  const deadline = now() + (options.budgetMs ?? ROLLUP_BUDGET_MS);
  try {
    while (rollUpBatch(db, options.batch ?? ROLLUP_BATCH) && now() < deadline);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'SQLITE_READONLY') throw error;
  }
}

/**
 * Readies the roll-up for a usage read: refused (UsageCatchingUpError) while more records than `limits.readBacklog` are
 * not rolled up, else brought up to date within a read's budget, leaving at most that many for the read to sum raw.
 */
export function usageForRead(db: SqlDatabase, limits: UsageRollUpLimits): void {
  const progress = usageBacklog(db);
  if (progress.behind > limits.readBacklog) throw new UsageCatchingUpError(progress);
  if (progress.behind > 0) refreshUsage(db, { batch: limits.batch });
}

/**
 * The days of [since, until) the roll-up answers for, as day numbers [first, end): the whole UTC days inside it, but never
 * the log's first day, which is read from the records. Once the log is pruned, the roll-up's sums of that day count records
 * it no longer holds, and nothing the records hold could check them.
 */
function rolledDays(db: SqlDatabase, query: UsageWindow): { first: number; end: number } {
  const day = firstDay(db);
  const first = Math.max(Math.ceil(query.since / DAY), day === undefined ? 0 : day + 1);
  const end = Math.floor(query.until / DAY);
  return end > first ? { first, end } : { first: 0, end: 0 };
}

/**
 * The window's usage: whole days from the roll-up, and raw from the log the records it does not
 * hold (newer than it, or in the window's partial first and last days). Exact either way.
 * `filter` is the store's WHERE over the columns both tables share, without the window: applied to
 * the grouped columns on both sides, so `issuer` is the verified one in raw records as in the roll-up.
 */
export function auditUsage(db: SqlDatabase, query: UsageQuery, filter: Where): UsageRow[] {
  const seq = rolledUpTo(db);
  const days = rolledDays(db, query);
  const raw = db.all<UsageRow>(
    `SELECT ${GROUPED}, count(*) AS count, min(time) AS first, max(time) AS last
      FROM (SELECT time, ${GROUP_COLUMNS} FROM ${GRANT_ROWS} WHERE time >= ? AND time < ? AND (seq > ? OR time < ? OR time >= ?))
      ${sqlWhere(filter.conditions)} GROUP BY ${GROUPED}`,
    [query.since, query.until, seq, days.first * DAY, days.end * DAY, ...filter.params],
  );
  const rolled = db.all<UsageRow>(
    `SELECT ${GROUPED}, sum(count) AS count, min(first) AS first, max(last) AS last FROM audit_usage
      ${sqlWhere(['day >= ? AND day < ?', ...filter.conditions])} GROUP BY grp`,
    [days.first, days.end, ...filter.params],
  );
  return [...rolled, ...raw];
}

/** Per granting policy and claim of its grants, the least and greatest text value and how many grants carried it; split as `auditUsage` is. */
export function auditClaimUsage(db: SqlDatabase, query: UsageWindow): ClaimUsageRow[] {
  const seq = rolledUpTo(db);
  const days = rolledDays(db, query);
  const raw = db.all<ClaimUsageRow>(
    `SELECT policy_id, claims.key AS claim, min(claims.value) AS least, max(claims.value) AS greatest, count(*) AS count
      FROM ${GRANT_ROWS} AS grants, json_each(grants.event, '$.claims') AS claims
      ${sqlWhere(['time >= ? AND time < ?', '(seq > ? OR time < ? OR time >= ?)', "decision = 'granted' AND policy_id IS NOT NULL AND claims.type = 'text'"])}
      GROUP BY 1, 2`,
    [query.since, query.until, seq, days.first * DAY, days.end * DAY],
  );
  const rolled = db.all<ClaimUsageRow>(
    `SELECT policy_id, claim, min(least) AS least, max(greatest) AS greatest, sum(count) AS count FROM audit_usage_claims
      WHERE day >= ? AND day < ? GROUP BY 1, 2`,
    [days.first, days.end],
  );
  return [...rolled, ...raw];
}
