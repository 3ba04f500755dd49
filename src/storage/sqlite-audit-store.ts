import type { AuditEvent, AuditRecord, AuditStore, ChainLink, PruneCandidate } from '../core/audit/audit-event.ts';
import { AUDIT_INDEX_COLUMNS, type AuditIndex } from '../core/audit/audit-index.ts';
import {
  AuditQueryError,
  BUCKETS,
  CURSOR_INVALID,
  rankCounts,
  STATS_TOP,
  zeroCounts,
  type AuditFilter,
  type AuditPage,
  type AuditQuery,
  type AuditStats,
  type AuditStatsQuery,
} from '../core/audit/audit-query.ts';
import type { ClaimUsageRow, UsageProgress, UsageQuery, UsageRow, UsageWindow } from '../core/audit/inventory.ts';
import {
  auditClaimUsage,
  auditUsage,
  dropPrunedUsage,
  refreshUsage,
  usageBacklog,
  usageForRead,
  USAGE_ROLLUP_LIMITS,
  type UsageRollUpLimits,
} from './sqlite-audit-usage.ts';
import { canonicalEvent, chainHash, chainHashOfCanonical, GENESIS_HASH, type CanonicalEvent } from '../core/audit/chain-hash.ts';
import { sha256Hex, type Sha256Hex } from '../core/mint/sha256-hex.ts';
import type { ChainHead, Checkpoint } from '../core/audit/checkpoint.ts';
import type { Decision } from '../core/errors/reasons.ts';
import type { SqlDatabase, SqlValue } from './sql-database.ts';
import { ChainConflictError } from '../core/audit/chain-conflict-error.ts';
import type { RunGrant, RunGrantRole } from '../core/audit/run-grants.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../core/mint/verify-access-token.ts';
import type { RecordMacs } from '../core/audit/record-mac.ts';
import type { KeyWithdrawn } from '../core/mint/key-ring.ts';
import { keyWithdrawal } from '../core/audit/withdrawn-keys.ts';

/** The greatest `exp` (seconds) of a token that no longer verifies at `at` (ms): one that expired within the clock skew tolerated beyond it still does. */
const lastExpired = (at: number): number => Math.floor(at / 1000) - ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS;

export type RecordRow = { seq: number; prev_hash: string | null; hash: string | null; event: string; mac?: string | null } & AuditIndex;
export type CheckpointRow = { seq: number; hash: string; time: number; jws: string };

/** A record with its index columns as they are stored, for `audit verify` to hold to the event. */
const RECORD_COLUMNS = `seq, prev_hash, hash, event, ${AUDIT_INDEX_COLUMNS.join(', ')}`;

export function toRecord(row: RecordRow): AuditRecord {
  const index = Object.fromEntries(AUDIT_INDEX_COLUMNS.map((column) => [column, row[column]])) as AuditIndex;
  return {
    event: JSON.parse(row.event) as AuditEvent,
    chain: { seq: row.seq, prev_hash: row.prev_hash ?? '', hash: row.hash ?? '' },
    index,
    text: row.event,
    ...(row.mac === undefined ? {} : { mac: row.mac }),
  };
}

const INSERT = `INSERT INTO audit_events (seq, ${AUDIT_INDEX_COLUMNS.join(', ')}, prev_hash, hash, event, mac)
  VALUES (${Array.from({ length: AUDIT_INDEX_COLUMNS.length + 5 }, () => '?').join(', ')})`;

export function toCheckpoint(row: CheckpointRow): Checkpoint {
  return { seq: row.seq, hash: row.hash, time: new Date(row.time).toISOString(), jws: row.jws };
}

/**
 * Inside the append's transaction: the run grants among `events`, so a grant's record and its index rows are durable
 * together, and the rows of tokens that no longer verify (at the batch's newest record's time) dropped. A restore runs it
 * over the records it wrote (state-dump.ts), so the index is theirs, not the export's.
 */
export function indexRunGrants(
  db: SqlDatabase,
  events: readonly { readonly index: Pick<AuditIndex, 'time'>; readonly runGrants: readonly RunGrant[] }[],
): void {
  let newest: number | undefined;
  for (const { index, runGrants } of events) {
    for (const grant of runGrants) {
      db.run(
        `INSERT INTO audit_run_grants (repository_id, run_id, audit_event_id, role, issuer, issuer_kind, check_run_id, run_attempt, jti, exp)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          grant.repositoryId,
          grant.runId,
          grant.auditEventId,
          grant.role,
          grant.issuer,
          grant.issuerKind,
          grant.checkRunId,
          grant.runAttempt,
          grant.jti,
          grant.exp,
        ],
      );
      newest = Math.max(newest ?? index.time, index.time);
    }
  }
  if (newest !== undefined) db.run('DELETE FROM audit_run_grants WHERE exp <= ?', [lastExpired(newest)]);
}

/**
 * The audit log over SqlDatabase: one row per event, each carrying the hash that chains it to
 * the row before. Appends read the head and extend it inside one transaction, so the chain
 * stays a line whoever writes; the columns beside the event JSON (audit-index.ts) exist only to be filtered on.
 */
export class SqliteAuditStore implements AuditStore {
  readonly #db: SqlDatabase;
  readonly #digest: Sha256Hex;
  readonly #macs: RecordMacs | undefined;
  readonly #usageLimits: UsageRollUpLimits;
  readonly #recordColumns: string;

  /**
   * `macs`: the record MAC keys (record-mac.ts), from the master key: each record appended is written with its MAC, and
   * recordMacsHold checks them. A store without them (a read-only one) writes none and checks none. `readMacs`: the
   * records read carry the MAC stored beside them, for `audit verify` to check (sqlite-audit-log-source.ts). `usage`: how
   * the usage roll-up is kept (sqlite-audit-usage.ts); a store that serves nothing (the CLI's) may sum any backlog itself.
   */
  constructor(
    db: SqlDatabase,
    options: { readonly sha256?: Sha256Hex; readonly macs?: RecordMacs; readonly readMacs?: boolean; readonly usage?: UsageRollUpLimits } = {},
  ) {
    this.#db = db;
    this.#digest = options.sha256 ?? sha256Hex;
    this.#macs = options.macs;
    this.#usageLimits = options.usage ?? USAGE_ROLLUP_LIMITS;
    this.#recordColumns = options.readMacs === true ? `${RECORD_COLUMNS}, mac` : RECORD_COLUMNS;
  }

  async append(event: AuditEvent): Promise<ChainLink> {
    return (await this.appendAll([event]))[0] as ChainLink;
  }

  /** Appends events in order in one transaction: all become durable together, or none do. */
  async appendAll(events: readonly AuditEvent[]): Promise<ChainLink[]> {
    return this.appendCanonical(events.map(canonicalEvent));
  }

  /** The same, for events already in their canonical form (the Node writer thread receives them so): hashed and stored as they are. */
  async appendCanonical(events: readonly CanonicalEvent[]): Promise<ChainLink[]> {
    return this.#db.transaction(() => {
      let head = this.#head();
      const links = events.map(({ text, index }) => {
        const link = { seq: head.seq + 1, prev_hash: head.hash, hash: chainHashOfCanonical(head.hash, text, this.#digest) };
        this.#insert(text, index, link);
        head = link;
        return link;
      });
      indexRunGrants(this.#db, events);
      return links;
    });
  }

  #insert(text: string, index: AuditIndex, link: ChainLink): void {
    this.#db.run(INSERT, [link.seq, ...AUDIT_INDEX_COLUMNS.map((column) => index[column]), link.prev_hash, link.hash, text, this.#macs?.make(link) ?? null]);
  }

  async grantsOfRun(repositoryId: string, runId: string, at: number): Promise<RunGrant[]> {
    return this.#db
      .all<{
        audit_event_id: string;
        role: RunGrantRole;
        issuer: string | null;
        issuer_kind: string | null;
        check_run_id: string | null;
        run_attempt: string | null;
        jti: string;
        exp: number;
      }>(
        `SELECT audit_event_id, role, issuer, issuer_kind, check_run_id, run_attempt, jti, exp FROM audit_run_grants
          WHERE repository_id = ? AND run_id = ? AND exp > ? ORDER BY audit_event_id, role DESC`,
        [repositoryId, runId, lastExpired(at)],
      )
      .map((row) => ({
        auditEventId: row.audit_event_id,
        role: row.role,
        issuer: row.issuer,
        issuerKind: row.issuer_kind,
        repositoryId,
        runId,
        checkRunId: row.check_run_id,
        runAttempt: row.run_attempt,
        jti: row.jti,
        exp: row.exp,
      }));
  }

  /** Inside a transaction: the head, chaining first any records written before the chain existed. */
  #head(): ChainHead {
    const [last] = this.#db.all<{ seq: number; hash: string | null }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    if (last === undefined) {
      const [anchor] = this.#db.all<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1');
      return anchor ?? { seq: 0, hash: GENESIS_HASH };
    }
    if (last.hash !== null) return { seq: last.seq, hash: last.hash };
    // Records from before migration 2 are chained once, in order, by the first append after it.
    let prev = GENESIS_HASH;
    for (const row of this.#db.all<{ seq: number; hash: string | null; event: string }>('SELECT seq, hash, event FROM audit_events ORDER BY seq')) {
      if (row.hash === null) {
        const hash = chainHash(prev, JSON.parse(row.event) as AuditEvent, this.#digest);
        this.#db.run('UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?', [prev, hash, row.seq]);
        prev = hash;
      } else {
        prev = row.hash;
      }
    }
    return { seq: last.seq, hash: prev };
  }

  async head(): Promise<ChainHead> {
    const [last] = this.#db.all<{ seq: number; hash: string | null }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    if (last !== undefined && last.hash !== null) return { seq: last.seq, hash: last.hash };
    return this.#db.transaction(() => this.#head());
  }

  async get(id: string): Promise<AuditEvent | undefined> {
    return (await this.record(id))?.event;
  }

  async record(id: string): Promise<AuditRecord | undefined> {
    const [row] = this.#db.all<RecordRow>(`SELECT ${this.#recordColumns} FROM audit_events WHERE id = ?`, [id]);
    return row === undefined ? undefined : toRecord(row);
  }

  async query(query: AuditQuery): Promise<AuditPage> {
    const by = query.by ?? 'seq';
    if (query.after !== undefined && !(by === 'seq' ? /^\d{1,15}$/ : /^[0-9A-Z]{26}$/).test(query.after)) throw new AuditQueryError(CURSOR_INVALID);
    // One read: the span and the page it bounds are of the same records, whatever the writer commits meanwhile.
    const rows = this.#db.read(() => {
      const span = this.#seqSpan(query);
      if (span === 'none') return [];
      // The time index has done its part (a window around the whole log needs none): the page is read by seq, by id, or
      // by another filter's index, never by time and then sorted.
      const where = whereClause(query, '+time');
      if (span !== undefined) {
        // In seq order the span is a range of the table to walk. In id order a narrow one is read whole and sorted; in a
        // wide one the id index keeps the order, and the unary + has the seq its entries hold checked there, row unread.
        where.conditions.push(by === 'seq' || span.hi - span.lo < SORTED_SPAN ? 'seq BETWEEN ? AND ?' : '+seq BETWEEN ? AND ?');
        where.params.push(span.lo, span.hi);
      }
      if (query.after !== undefined) {
        where.conditions.push(`${by} ${query.order === 'desc' ? '<' : '>'} ?`);
        where.params.push(by === 'seq' ? Number(query.after) : query.after);
      }
      return this.#db.all<RecordRow>(
        `SELECT ${this.#recordColumns} FROM audit_events ${sqlWhere(where.conditions)} ORDER BY ${by} ${query.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`,
        [...where.params, query.limit + 1],
      );
    });
    const records = rows.slice(0, query.limit).map(toRecord);
    const last = records.at(-1);
    if (rows.length <= query.limit || last === undefined) return { records };
    return { records, next: by === 'seq' ? String(last.chain.seq) : last.event.id };
  }

  /**
   * Inside a read: the least and greatest seq of the records in the filter's time window, from the time index alone
   * (its entries hold the seq), or 'none' when no record is in it; undefined when every record is (no window, or one
   * around the whole log), which needs no bound. The seqs bound the window exactly however time runs against seq (the
   * broker's clock can step back, a slow request is dated when it began): a newest-first page then walks only the
   * window's rows, where without them it walks every newer or older row, and SQLite, told nothing of how `time` spreads,
   * would rather walk seq than sort. Reading the window's index entries costs about a twentieth of reading its rows.
   */
  #seqSpan(filter: AuditFilter): { lo: number; hi: number } | 'none' | undefined {
    const [ends] = this.#db.all<{ first: number | null; last: number | null }>(
      'SELECT (SELECT min(time) FROM audit_events) AS first, (SELECT max(time) FROM audit_events) AS last',
    );
    if (ends?.first == null || ends.last == null) return 'none';
    const window = whereClause({
      ...(filter.since !== undefined && filter.since > ends.first ? { since: filter.since } : {}),
      ...(filter.until !== undefined && filter.until <= ends.last ? { until: filter.until } : {}),
    });
    if (window.conditions.length === 0) return undefined;
    const [span] = this.#db.all<{ lo: number | null; hi: number | null }>(
      `SELECT min(seq) AS lo, max(seq) AS hi FROM audit_events INDEXED BY audit_events_time ${sqlWhere(window.conditions)}`,
      window.params,
    );
    return span?.lo == null || span.hi == null ? 'none' : { lo: span.lo, hi: span.hi };
  }

  async stats(query: AuditStatsQuery): Promise<AuditStats> {
    const size = BUCKETS[query.bucket];
    const where = whereClause(query);
    const clause = sqlWhere(where.conditions);
    const grouped = <Key extends string>(key: Key) =>
      this.#db.all<{ key: string | number | null; decision: Decision; n: number }>(
        `SELECT ${key} AS key, decision, count(*) AS n FROM audit_events ${clause} GROUP BY key, decision`,
        where.params,
      );

    const first = Math.floor(query.since / size);
    const series = Array.from({ length: Math.ceil(query.until / size) - first }, (_, index) => ({
      start: new Date((first + index) * size).toISOString(),
      counts: zeroCounts(),
    }));
    const totals = zeroCounts();
    for (const row of grouped(`time / ${size}`)) {
      const bucket = series[Number(row.key) - first];
      if (bucket !== undefined) bucket.counts[row.decision] += row.n;
      totals[row.decision] += row.n;
    }
    const top = (rows: ReturnType<typeof grouped>) => {
      const byKey = new Map<string | null, Record<Decision, number>>();
      for (const row of rows) {
        const key = row.key === null ? null : String(row.key);
        const counts = byKey.get(key) ?? zeroCounts();
        counts[row.decision] += row.n;
        byKey.set(key, counts);
      }
      return rankCounts(byKey, query.top ?? STATS_TOP);
    };
    return {
      since: new Date(query.since).toISOString(),
      until: new Date(query.until).toISOString(),
      bucket: query.bucket,
      totals,
      series,
      by_policy: top(grouped('policy_id')).map(([policy, counts]) => ({ policy, counts })),
      by_repository: top(grouped('repository')).map(([repository, counts]) => ({ repository, counts })),
    };
  }

  async usage(query: UsageQuery): Promise<UsageRow[]> {
    usageForRead(this.#db, this.#usageLimits);
    const { since: _since, until: _until, ...filter } = query;
    return auditUsage(this.#db, query, whereClause(filter));
  }

  async claimUsage(window: UsageWindow): Promise<ClaimUsageRow[]> {
    usageForRead(this.#db, this.#usageLimits);
    return auditClaimUsage(this.#db, window);
  }

  /**
   * One slice of upkeep's catching up of the usage roll-up (a batch at least, then batches for up to `budgetMs`); returns how
   * far it has come, for the runtime to run another slice soon while records are left.
   */
  rollUpUsage(budgetMs: number): UsageProgress {
    refreshUsage(this.#db, { budgetMs, batch: this.#usageLimits.batch });
    return usageBacklog(this.#db);
  }

  async checkpoints(afterSeq: number, limit: number): Promise<Checkpoint[]> {
    return this.#db
      .all<CheckpointRow>('SELECT seq, hash, time, jws FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?', [afterSeq, limit])
      .map(toCheckpoint);
  }

  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    const [row] = this.#db.all<CheckpointRow>('SELECT seq, hash, time, jws FROM audit_checkpoints ORDER BY seq DESC LIMIT 1');
    return row === undefined ? undefined : toCheckpoint(row);
  }

  async addCheckpoint(checkpoint: Checkpoint): Promise<void> {
    this.#db.transaction(() => {
      const [row] = this.#db.all<{ hash: string | null }>('SELECT hash FROM audit_events WHERE seq = ?', [checkpoint.seq]);
      if (row?.hash !== checkpoint.hash) throw new ChainConflictError(`record ${checkpoint.seq} does not have the hash the checkpoint signs`);
      this.#insertCheckpoint(checkpoint);
    });
  }

  #insertCheckpoint(checkpoint: Checkpoint): void {
    this.#db.run('INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [
      checkpoint.seq,
      checkpoint.hash,
      Date.parse(checkpoint.time),
      checkpoint.jws,
    ]);
  }

  /**
   * The last record of the longest run from the oldest kept one (at most `maxRecords`) that is older than `before` by its
   * hashed `time`, read in chain order: what to prune up to. The `time` column is not hashed, so it decides nothing here
   * (whoever can write the file could date a recent record back with it). Each record read must hold (#holding); one
   * that does not is a ChainConflictError and nothing is pruned. Read in chain order, a record of a slow request (dated
   * when it began, appended when it ended) only stops the run early; it is pruned the next round. One read, which keeps
   * no writer waiting. The key withdrawals the run's records name come with it, read from the same hashed records.
   */
  async pruneCandidate(before: number, maxRecords: number): Promise<PruneCandidate | undefined> {
    return this.#db.read(() => {
      const start = this.#start();
      if (start === undefined) return undefined;
      let last: ChainHead | undefined;
      const withdrawals: KeyWithdrawn[] = [];
      for (const record of this.#holding(start, start.seq + maxRecords)) {
        const event = JSON.parse(record.event) as AuditEvent;
        if (!(Date.parse(event.time) < before)) break;
        last = record.link;
        const withdrawal = keyWithdrawal({ event, chain: record.link });
        if (withdrawal !== undefined) withdrawals.push({ kid: withdrawal.kid, withdrawnAt: Date.parse(withdrawal.time) });
      }
      return last === undefined ? undefined : { ...last, withdrawals };
    });
  }

  /**
   * Throws a ChainConflictError unless the records after `from` up to `to` hold: a record still kept at `from.seq` has
   * `from.hash`, each record after it holds (#holding: none missing, each committed to the one before and hashing to its
   * own hash), and the one at `to.seq` has `to.hash`. With `to` from a checkpoint the broker's signature vouches for, a
   * record rewritten between them cannot hide: re-hashed, it leaves the next record's link or content, or `to`'s hash,
   * behind. One read; every record of the span is hashed.
   */
  async chainHolds(from: ChainHead, to: ChainHead): Promise<void> {
    this.#db.read(() => {
      const hashAt = (seq: number) => this.#db.all<{ hash: string | null }>('SELECT hash FROM audit_events WHERE seq = ?', [seq])[0];
      const kept = hashAt(from.seq);
      if (kept !== undefined && kept.hash !== from.hash) throw new ChainConflictError(`record ${from.seq} differs from the checkpoint signed over it`);
      let held = 0;
      for (const _record of this.#holding(from, to.seq)) held += 1;
      if (held !== to.seq - from.seq) throw new ChainConflictError(`records between ${from.seq} and ${to.seq} are missing`);
      const last = hashAt(to.seq);
      if ((last === undefined ? from.hash : last.hash) !== to.hash) throw new ChainConflictError(`record ${to.seq} differs from the checkpoint signed over it`);
    });
  }

  /**
   * Inside a read: the records after `from` up to `toSeq` (fewer where the log ends first), in chain order, each yielded
   * once it holds: it follows the one before (`from`, for the first) with no seq missing, commits to its hash, and its
   * event hashes to its own hash. The first that does not is a ChainConflictError naming it.
   */
  *#holding(from: ChainHead, toSeq: number): Generator<{ readonly link: ChainHead; readonly event: string }> {
    const page = 500;
    let expected = from;
    while (expected.seq < toSeq) {
      const limit = Math.min(page, toSeq - expected.seq);
      const rows = this.#db.all<Pick<RecordRow, 'seq' | 'prev_hash' | 'hash' | 'event'>>(
        'SELECT seq, prev_hash, hash, event FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?',
        [expected.seq, limit],
      );
      for (const row of rows) {
        const refuse = (why: string) => new ChainConflictError(`record ${row.seq} ${why}`);
        if (row.seq !== expected.seq + 1) throw refuse(`follows record ${expected.seq}: records are missing`);
        if (row.prev_hash !== expected.hash) throw refuse('does not commit to the record (or checkpoint) before it');
        // The stored text is the canonical one the chain hashes (older keyways stored other JSON: then it is encoded again).
        if (
          chainHashOfCanonical(row.prev_hash, row.event, this.#digest) !== row.hash &&
          chainHash(row.prev_hash, JSON.parse(row.event) as AuditEvent, this.#digest) !== row.hash
        ) {
          throw refuse('no longer matches its hash');
        }
        expected = { seq: row.seq, hash: row.hash };
        yield { link: expected, event: row.event };
      }
      if (rows.length < limit) return;
    }
  }

  /** Where the log as stored begins: the predecessor of its oldest record (the genesis, or the anchor pruning left); undefined when it is empty. */
  #start(): ChainHead | undefined {
    const [first] = this.#db.all<{ seq: number | null }>('SELECT min(seq) AS seq FROM audit_events');
    if (first?.seq == null) return undefined;
    if (first.seq === 1) return { seq: 0, hash: GENESIS_HASH };
    const [anchor] = this.#db.all<{ hash: string }>('SELECT hash FROM audit_checkpoints WHERE seq = ?', [first.seq - 1]);
    return { seq: first.seq - 1, hash: anchor?.hash ?? '' };
  }

  /** Where MACs start as the store remembers it (audit_mac_start): the seq its log ended at when the migration that added them ran. */
  macsStart(): number {
    return this.#db.all<{ macs_after: number }>('SELECT macs_after FROM audit_mac_start')[0]?.macs_after ?? 0;
  }

  async recordMacsHold(afterSeq: number, toSeq: number, macsAfter?: number): Promise<number> {
    const macs = this.#macs;
    if (macs === undefined) throw new Error("no master key to check the records' MACs with");
    return this.#db.read(() => {
      const check = macs.inOrder(macsAfter ?? this.macsStart());
      const page = 500;
      for (let after = afterSeq; after < toSeq; ) {
        const rows = this.#db.all<{ seq: number; hash: string | null; mac: string | null }>(
          'SELECT seq, hash, mac FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?',
          [after, toSeq, page],
        );
        for (const row of rows) {
          const problem = check.problem({ seq: row.seq, hash: row.hash ?? '' }, row.mac);
          if (problem !== undefined) throw new ChainConflictError(`record ${row.seq} ${problem.why}`);
        }
        if (rows.length < page) break;
        after = rows.at(-1)?.seq ?? toSeq;
      }
      return check.macsAfter(toSeq);
    });
  }

  async prune(anchor: Checkpoint): Promise<number> {
    return this.#db.transaction(() => {
      const [row] = this.#db.all<{ hash: string | null }>('SELECT hash FROM audit_events WHERE seq = ?', [anchor.seq]);
      if (row?.hash !== anchor.hash) throw new ChainConflictError(`record ${anchor.seq} does not have the hash the anchor signs`);
      // Older checkpoints sign records that are gone, and a head checkpoint at the anchor's seq is no anchor (verify-chain.ts):
      // the anchor now stands for all of them.
      this.#db.run('DELETE FROM audit_checkpoints WHERE seq <= ?', [anchor.seq]);
      this.#insertCheckpoint(anchor);
      // Counted, not taken from the DELETE: a Durable Object reports index rows written too.
      const [counted] = this.#db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events WHERE seq <= ?', [anchor.seq]);
      this.#db.run('DELETE FROM audit_events WHERE seq <= ?', [anchor.seq]);
      dropPrunedUsage(this.#db);
      return counted?.n ?? 0;
    });
  }
}

/**
 * The widest span of seqs a page in id order reads whole and sorts; past it the page walks the id index instead, which
 * reads only the rows inside the span and stops at the page's end, but passes over the entries of every other record.
 */
export const SORTED_SPAN = 5000;

const EQUALS = { issuer: 'issuer', subject: 'subject', repository: 'repository', policy: 'policy_id' } as const;

/** `time`: the column as the conditions name it; `+time` keeps SQLite from reading them through the time index. */
function whereClause(filter: AuditFilter, time: 'time' | '+time' = 'time'): { conditions: string[]; params: SqlValue[] } {
  const conditions: string[] = [];
  const params: SqlValue[] = [];
  const add = (condition: string, ...values: SqlValue[]) => {
    conditions.push(condition);
    params.push(...values);
  };
  if (filter.since !== undefined) add(`${time} >= ?`, filter.since);
  if (filter.until !== undefined) add(`${time} < ?`, filter.until);
  if (filter.decisions !== undefined) add(`decision IN (${filter.decisions.map(() => '?').join(', ')})`, ...filter.decisions);
  if (filter.reasons !== undefined) add(`reason IN (${filter.reasons.map(() => '?').join(', ')})`, ...filter.reasons);
  for (const [name, column] of Object.entries(EQUALS) as [keyof typeof EQUALS, string][]) {
    const value = filter[name];
    if (value !== undefined) add(`${column} = ?`, value);
  }
  if (filter.jti !== undefined) add('(issued_jti = ? OR subject_jti = ?)', filter.jti, filter.jti);
  // Read from the event itself, not an index column: proxied requests are a slice of the log, and the time index narrows first.
  if (filter.upstream !== undefined) add("json_extract(event, '$.proxy.upstream') = ?", filter.upstream);
  return { conditions, params };
}

function sqlWhere(conditions: readonly string[]): string {
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
}
