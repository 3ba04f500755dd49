import { DurableObject } from 'cloudflare:workers';
import type { AuditEvent, AuditRecord, AuditStore, ChainLink } from '../../core/audit/audit-event.ts';
import type { AuditPage, AuditQuery, AuditStats, AuditStatsQuery } from '../../core/audit/audit-query.ts';
import type { ChainHead, Checkpoint } from '../../core/audit/checkpoint.ts';
import { migrate } from '../../storage/migrate.ts';
import type { SqlDatabase } from '../../storage/sql-database.ts';
import { SqliteAuditStore } from '../../storage/sqlite-audit-store.ts';
import { durableObjectSql } from './durable-object-sql.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * A SQLite-backed Durable Object holding one audit hash chain with the store the Node SQLite file
 * runs (SqliteAuditStore), served over RPC: KeywayState (the sealed legacy chain) and every
 * AuditShardState. A Durable Object runs one call at a time and commits before its RPC returns,
 * so each append is ordered in its chain and durable when it resolves.
 */
export abstract class AuditChainObject extends DurableObject<WorkerEnv> implements AuditStore {
  protected readonly db: SqlDatabase;
  protected readonly audit: SqliteAuditStore;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.db = durableObjectSql(ctx.storage);
    migrate(this.db);
    this.audit = new SqliteAuditStore(this.db);
  }

  append(event: AuditEvent): Promise<ChainLink> {
    return this.audit.append(event);
  }

  get(id: string): Promise<AuditEvent | undefined> {
    return this.audit.get(id);
  }

  record(id: string): Promise<AuditRecord | undefined> {
    return this.audit.record(id);
  }

  query(query: AuditQuery): Promise<AuditPage> {
    return this.audit.query(query);
  }

  stats(query: AuditStatsQuery): Promise<AuditStats> {
    return this.audit.stats(query);
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

  pruneCandidate(before: number, maxRecords: number): Promise<ChainHead | undefined> {
    return this.audit.pruneCandidate(before, maxRecords);
  }

  prune(anchor: Checkpoint): Promise<number> {
    return this.audit.prune(anchor);
  }
}

/** The Worker-side AuditStore of one chain object: RPC to it. A stub belongs to the request that made it, so each call makes its own. */
export function chainStore(stub: () => DurableObjectStub<AuditChainObject>): AuditStore {
  return {
    append: (event) => stub().append(event),
    get: (id) => stub().get(id),
    record: (id) => stub().record(id),
    query: (query) => stub().query(query),
    stats: (query) => stub().stats(query),
    head: () => stub().head(),
    checkpoints: (afterSeq, limit) => stub().checkpoints(afterSeq, limit),
    latestCheckpoint: () => stub().latestCheckpoint(),
    addCheckpoint: (checkpoint) => stub().addCheckpoint(checkpoint),
    pruneCandidate: (before, maxRecords) => stub().pruneCandidate(before, maxRecords),
    prune: (anchor) => stub().prune(anchor),
  };
}
