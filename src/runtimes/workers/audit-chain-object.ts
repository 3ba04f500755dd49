import { DurableObject } from 'cloudflare:workers';
import { UsageCatchingUpError, type ClaimUsageRow, type UsageProgress, type UsageQuery, type UsageRow, type UsageWindow } from '../../core/audit/inventory.ts';
import type { AuditEvent, AuditRecord, AuditStore, ChainLink, PruneCandidate } from '../../core/audit/audit-event.ts';
import { AuditQueryError, type AuditPage, type AuditQuery, type AuditStats, type AuditStatsQuery } from '../../core/audit/audit-query.ts';
import type { ChainHead, Checkpoint } from '../../core/audit/checkpoint.ts';
import type { RunGrant } from '../../core/audit/run-grants.ts';
import { migrate } from '../../storage/migrate.ts';
import type { SqlDatabase } from '../../storage/sql-database.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import { READ_BACKLOG_MAX, UPKEEP_SLICE_MS, USAGE_SLICE_PAUSE_MS, usageBacklog } from '../../storage/sqlite-audit-usage.ts';
import { durableObjectSql } from './durable-object-sql.ts';
import type { WorkerEnv } from './worker-broker.ts';
import type { SecretBox } from '../../core/secrets/secret-box.ts';
import { readMasterKeys } from '../../core/secrets/master-keys.ts';
import { RecordMacs, recordMacKeys, type RecordMacKey } from '../../core/audit/record-mac.ts';
import { dumpDatabase, parseStateDump, restoreDump, StateRestoreError, usedTables, type RestoredState } from '../../storage/state-dump.ts';
import { ChainConflictError } from '../../core/audit/chain-conflict-error.ts';

/**
 * A SQLite-backed Durable Object holding one audit hash chain with the store the Node SQLite file
 * runs (SqliteAuditStore), served over RPC: KeywayState (the sealed legacy chain) and every
 * AuditShardState. A Durable Object runs one call at a time and commits before its RPC returns,
 * so each append is ordered in its chain and durable when it resolves. The calls that make or check
 * record MACs are given the chain's name by the Worker, which picks the object by that name
 * (chainStore): a MAC binds it, and the object's storage, which whoever can write it could change,
 * must not be what tells it.
 */
export abstract class AuditChainObject extends DurableObject<WorkerEnv> {
  protected readonly db: SqlDatabase;
  /** The chain's reads, and whatever needs no MAC. */
  protected readonly audit: SqliteAuditStore;
  readonly #macKeys: readonly RecordMacKey[] | undefined;
  readonly #chains = new Map<string, SqliteAuditStore>();

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.db = durableObjectSql(ctx.storage);
    migrate(this.db);
    // Each chain object MACs its records with the key its env's master key derives (none without one: then upkeep signs nothing).
    const master = readMasterKeys(env);
    this.#macKeys = master === undefined ? undefined : recordMacKeys(master);
    this.audit = new SqliteAuditStore(this.db);
    // A roll-up a migration emptied is caught up by the alarm, before any read would have to wait for it.
    if (usageBacklog(this.db).behind > READ_BACKLOG_MAX) void ctx.blockConcurrencyWhile(() => this.armAlarm(Date.now()));
  }

  /** The record MACs of this object's chain, named `chain`; none without a master key. */
  #macs(chain: string): RecordMacs | undefined {
    return this.#macKeys === undefined ? undefined : new RecordMacs(this.#macKeys, { chain });
  }

  /** The store that appends to this object's chain, named `chain`, and checks its records' MACs. */
  protected chainAudit(chain: string): SqliteAuditStore {
    let store = this.#chains.get(chain);
    if (store === undefined) {
      const macs = this.#macs(chain);
      store = new SqliteAuditStore(this.db, macs === undefined ? {} : { macs });
      this.#chains.set(chain, store);
    }
    return store;
  }

  append(event: AuditEvent, chain: string): Promise<ChainLink> {
    return this.chainAudit(chain).append(event);
  }

  appendAll(events: readonly AuditEvent[], chain: string): Promise<ChainLink[]> {
    return this.chainAudit(chain).appendAll(events);
  }

  get(id: string): Promise<AuditEvent | undefined> {
    return this.audit.get(id);
  }

  record(id: string): Promise<AuditRecord | undefined> {
    return this.audit.record(id);
  }

  query(query: AuditQuery): Promise<ChainAnswer<AuditPage>> {
    return answered(() => this.audit.query(query));
  }

  stats(query: AuditStatsQuery): Promise<AuditStats> {
    return this.audit.stats(query);
  }

  usage(query: UsageQuery): Promise<UsageAnswer<UsageRow>> {
    return this.#usageAnswer(() => this.audit.usage(query));
  }

  claimUsage(window: UsageWindow): Promise<UsageAnswer<ClaimUsageRow>> {
    return this.#usageAnswer(() => this.audit.claimUsage(window));
  }

  /** A read refused as catching up crosses RPC as a value (an error's class and fields do not), and has the alarm catch up. */
  async #usageAnswer<T>(read: () => Promise<T[]>): Promise<UsageAnswer<T>> {
    try {
      return { rows: await read() };
    } catch (error) {
      if (!(error instanceof UsageCatchingUpError)) throw error;
      await this.armAlarm(Date.now());
      return { catchingUp: error.progress };
    }
  }

  /**
   * One slice of catching up the usage roll-up, run by the alarm: while records are left, the alarm is set again soon, so
   * the backlog a migration left is rolled up a slice at a time between appends, not summed by reads. `budgetMs`: a test's.
   */
  async rollUpUsage(budgetMs = UPKEEP_SLICE_MS): Promise<UsageProgress> {
    const progress = this.audit.rollUpUsage(budgetMs);
    if (progress.behind > 0) await this.armAlarm(Date.now() + USAGE_SLICE_PAUSE_MS);
    return progress;
  }

  /** Sets the alarm to `at`, unless it is set sooner: one alarm serves all of an object's upkeep. */
  protected async armAlarm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  grantsOfRun(repositoryId: string, runId: string, at: number): Promise<RunGrant[]> {
    return this.audit.grantsOfRun(repositoryId, runId, at);
  }

  head(): Promise<ChainHead> {
    return this.audit.head();
  }

  checkpoints(afterSeq: number, limit: number): Promise<Checkpoint[]> {
    return this.audit.checkpoints(afterSeq, limit);
  }

  latestCheckpoint(): Promise<Checkpoint | undefined> {
    return this.audit.latestCheckpoint();
  }

  addCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return this.audit.addCheckpoint(checkpoint);
  }

  pruneCandidate(before: number, maxRecords: number): Promise<ChainAnswer<PruneCandidate | undefined>> {
    return answered(() => this.audit.pruneCandidate(before, maxRecords));
  }

  chainHolds(from: ChainHead, to: ChainHead): Promise<ChainAnswer<void>> {
    return answered(() => this.audit.chainHolds(from, to));
  }

  recordMacsHold(chain: string, afterSeq: number, toSeq: number, macsAfter?: number): Promise<ChainAnswer<number>> {
    return answered(() => this.chainAudit(chain).recordMacsHold(afterSeq, toSeq, macsAfter));
  }

  prune(anchor: Checkpoint): Promise<number> {
    return this.audit.prune(anchor);
  }

  // Issue 21: export and restore (GET /v1/backup, POST /v1/backup/restore), of the state and of every shard.

  /** Every keyway table as one JSON text, read in one synchronous transaction; undefined when it exceeds MAX_STATE_EXPORT_BYTES. */
  exportState(): string | undefined {
    const text = JSON.stringify(dumpDatabase(this.db, Date.now()));
    return text.length > MAX_STATE_EXPORT_BYTES ? undefined : text;
  }

  /** The keyway tables that hold rows here (none but signing_keys: fresh, an export may be restored into it). */
  usedTables(): string[] {
    return usedTables(this.db);
  }

  /** Restores an export into this object if it is fresh and the export checks out (storage/state-dump.ts); nothing is written otherwise. */
  protected async restoreFrom(text: string, box: SecretBox, options: RestoreOptions & { readonly chain: string }): Promise<StateRestoreOutcome> {
    try {
      return { ok: true, restored: await restoreDump(this.db, parseStateDump(text), box, { ...options, macs: this.#macs(options.chain) }) };
    } catch (error) {
      if (error instanceof StateRestoreError) return { ok: false, problem: error.problem, message: error.message };
      throw error;
    }
  }
}

/**
 * The largest export one call returns (a Durable Object RPC result is limited to 32 MiB): with
 * audit records of about 1–2 KB, some 10,000 to 20,000 of them. A larger log is pruned by
 * KEYWAY_AUDIT_RETENTION_DAYS, or read with GET /v1/audit/export.
 */
export const MAX_STATE_EXPORT_BYTES = 24 * 1024 * 1024;

export type RestoreOptions = Omit<Parameters<typeof restoreDump>[3], 'macs' | 'chain'>;

export type StateRestoreOutcome =
  | { readonly ok: true; readonly restored: RestoredState }
  | { readonly ok: false; readonly problem: StateRestoreError['problem']; readonly message: string };

/**
 * The Worker-side AuditStore of one chain object, the chain named `chain` (a shard's index, or `legacy`): RPC to it. A stub
 * belongs to the request that made it, so each call makes its own.
 */
export function chainStore(stub: () => DurableObjectStub<AuditChainObject>, chain: string): AuditStore {
  return {
    append: (event) => stub().append(event, chain),
    appendAll: (events) => stub().appendAll(events, chain),
    get: (id) => stub().get(id),
    record: (id) => stub().record(id),
    query: async (query) => unwrapped(await stub().query(query)),
    stats: (query) => stub().stats(query),
    usage: async (query) => usageRows(await stub().usage(query)),
    claimUsage: async (window) => usageRows(await stub().claimUsage(window)),
    grantsOfRun: (repositoryId, runId, at) => stub().grantsOfRun(repositoryId, runId, at),
    head: () => stub().head(),
    checkpoints: (afterSeq, limit) => stub().checkpoints(afterSeq, limit),
    latestCheckpoint: () => stub().latestCheckpoint(),
    addCheckpoint: (checkpoint) => stub().addCheckpoint(checkpoint),
    pruneCandidate: async (before, maxRecords) => unwrapped(await stub().pruneCandidate(before, maxRecords)),
    chainHolds: async (from, to) => unwrapped(await stub().chainHolds(from, to)),
    recordMacsHold: async (afterSeq, toSeq, macsAfter) => unwrapped(await stub().recordMacsHold(chain, afterSeq, toSeq, macsAfter)),
    prune: (anchor) => stub().prune(anchor),
  };
}

/** A chain object's usage read: its rows, or how far its roll-up is while it catches up (UsageCatchingUpError). */
export type UsageAnswer<T> = { readonly rows: T[] } | { readonly catchingUp: UsageProgress };

function usageRows<T>(answer: UsageAnswer<T>): T[] {
  if ('catchingUp' in answer) throw new UsageCatchingUpError(answer.catchingUp);
  return answer.rows;
}

/**
 * A chain object's answer, or its refusal as a value: an error crosses RPC as a plain Error, and the caller tells a
 * refusal from a failure by its class alone. Upkeep prunes, then fails, over records that do not hold (ChainConflictError)
 * and stops at any other error; the audit API answers a query the store cannot read (AuditQueryError) 400, anything else 5xx.
 */
export type ChainAnswer<T> = { readonly value: T } | { readonly refused: 'chain_conflict' | 'audit_query'; readonly message: string };

async function answered<T>(call: () => Promise<T>): Promise<ChainAnswer<T>> {
  try {
    return { value: await call() };
  } catch (error) {
    if (error instanceof ChainConflictError) return { refused: 'chain_conflict', message: error.message };
    if (error instanceof AuditQueryError) return { refused: 'audit_query', message: error.message };
    throw error;
  }
}

function unwrapped<T>(answer: ChainAnswer<T>): T {
  if (!('refused' in answer)) return answer.value;
  throw answer.refused === 'chain_conflict' ? new ChainConflictError(answer.message) : new AuditQueryError(answer.message);
}
