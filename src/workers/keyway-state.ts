import { DurableObject } from 'cloudflare:workers';
import type { AlertDelivery, AlertDraft, StoredAlert } from '../alerts/alert.ts';
import type { AlertObservation, AlertStore, ObserveOptions } from '../alerts/alert-store.ts';
import type { AuditEvent, AuditRecord, AuditStore, ChainLink } from '../audit/audit-event.ts';
import type { AuditPage, AuditQuery, AuditStats, AuditStatsQuery } from '../audit/audit-query.ts';
import { readAuditSettings } from '../audit/audit-settings.ts';
import type { ChainHead, Checkpoint } from '../audit/checkpoint.ts';
import { maintainAuditLog } from '../audit/maintain-audit-log.ts';
import { checkpointSigner } from '../audit/sign-checkpoint.ts';
import { readMasterKeys } from '../secrets/master-keys.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import { ConfigError } from '../settings.ts';
import { migrate } from '../storage/migrate.ts';
import { SqliteAlertStore } from '../storage/sqlite-alert-store.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { SqliteKeyStore } from '../storage/sqlite-key-store.ts';
import { KeyRing } from '../tokens/key-ring.ts';
import type { KeyRingPlan } from '../tokens/key-life-cycle.ts';
import type { KeyStore, KeyTransition, SigningKeyInfo, StoredSigningKey } from '../tokens/key-store.ts';
import type { SqlDatabase } from '../storage/sql-database.ts';
import { durableObjectSql } from './durable-object-sql.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * The broker's state on Workers: one SQLite-backed Durable Object running the same stores as
 * the Node SQLite file. A Durable Object is single-threaded and strongly consistent, so every
 * append is ordered and committed before its RPC returns.
 */
export class KeywayState extends DurableObject<WorkerEnv> implements AuditStore, KeyStore, AlertStore {
  readonly #audit: SqliteAuditStore;
  readonly #db: SqlDatabase;
  readonly #alerts: SqliteAlertStore;
  #keys: Promise<SqliteKeyStore> | undefined;
  #alarmSet = false;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const db = durableObjectSql(ctx.storage);
    migrate(db);
    this.#db = db;
    this.#audit = new SqliteAuditStore(db);
    this.#alerts = new SqliteAlertStore(db);
  }

  async append(event: AuditEvent): Promise<ChainLink> {
    const link = await this.#audit.append(event);
    // Checkpoints follow the appends: the first append after a checkpoint sets the next alarm.
    if (!this.#alarmSet) {
      this.#alarmSet = true;
      if ((await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(Date.now() + readAuditSettings(this.env).checkpointSeconds * 1000);
      }
    }
    return link;
  }

  /** Signs a checkpoint of the head and prunes what left the retention window. */
  override async alarm(): Promise<void> {
    this.#alarmSet = false;
    const settings = readAuditSettings(this.env);
    const ring = await KeyRing.from(await (await this.#keyStore()).listKeys());
    await maintainAuditLog(this.#audit, checkpointSigner(this.env.KEYWAY_ISSUER, () => ring, Date.now), { now: Date.now(), retentionDays: settings.retentionDays });
    // While retention applies, keep pruning even when no exchange comes to set the alarm.
    if (settings.retentionDays > 0 && (await this.#audit.head()).seq > 0) {
      this.#alarmSet = true;
      await this.ctx.storage.setAlarm(Date.now() + Math.max(settings.checkpointSeconds, 3600) * 1000);
    }
  }

  get(id: string): Promise<AuditEvent | undefined> {
    return this.#audit.get(id);
  }

  record(id: string): Promise<AuditRecord | undefined> {
    return this.#audit.record(id);
  }

  query(query: AuditQuery): Promise<AuditPage> {
    return this.#audit.query(query);
  }

  stats(query: AuditStatsQuery): Promise<AuditStats> {
    return this.#audit.stats(query);
  }

  head(): Promise<ChainHead> {
    return this.#audit.head();
  }

  checkpoints(afterSeq: number, limit: number): Promise<Checkpoint[]> {
    return this.#audit.checkpoints(afterSeq, limit);
  }

  latestCheckpoint(): Promise<Checkpoint | undefined> {
    return this.#audit.latestCheckpoint();
  }

  addCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return this.#audit.addCheckpoint(checkpoint);
  }

  pruneCandidate(before: number, maxRecords: number): Promise<ChainHead | undefined> {
    return this.#audit.pruneCandidate(before, maxRecords);
  }

  prune(anchor: Checkpoint): Promise<number> {
    return this.#audit.prune(anchor);
  }

  observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation> {
    return this.#alerts.observe(event, link, options);
  }

  addAlerts(drafts: readonly AlertDraft[], delivery: AlertDelivery): Promise<StoredAlert[]> {
    return this.#alerts.addAlerts(drafts, delivery);
  }

  setDelivery(id: string, delivery: AlertDelivery, attempts: number): Promise<void> {
    return this.#alerts.setDelivery(id, delivery, attempts);
  }

  alerts(limit: number): Promise<StoredAlert[]> {
    return this.#alerts.alerts(limit);
  }

  async listKeys(): Promise<StoredSigningKey[]> {
    return (await this.#keyStore()).listKeys();
  }

  async describeKeys(): Promise<SigningKeyInfo[]> {
    return new SqliteKeyStore(this.#db).describeKeys();
  }

  async initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]> {
    return (await this.#keyStore()).initializeKeys(candidate);
  }

  async advanceKeys(plan: KeyRingPlan): Promise<KeyTransition[]> {
    return (await this.#keyStore()).advanceKeys(plan);
  }

  /** Private signing keys are sealed under the KEYWAY_MASTER_KEY Worker secret; without it they stay shut. */
  #keyStore(): Promise<SqliteKeyStore> {
    this.#keys ??= (async () => {
      const master = readMasterKeys(this.env);
      if (master === undefined) throw new ConfigError(MASTER_KEY_MISSING);
      return new SqliteKeyStore(this.#db, await SecretBox.fromMasterKeys(master));
    })();
    // A failure (no secret yet) is not remembered: the next call reads the environment again.
    this.#keys.catch(() => (this.#keys = undefined));
    return this.#keys;
  }
}

export const MASTER_KEY_MISSING = 'KEYWAY_MASTER_KEY is not set: signing keys are sealed under it. Generate one with `openssl rand -base64 32` and run `wrangler secret put KEYWAY_MASTER_KEY`';

/** The one instance every isolate talks to. */
export function keywayState(namespace: DurableObjectNamespace<KeywayState>, name = 'keyway'): DurableObjectStub<KeywayState> {
  return namespace.get(namespace.idFromName(name));
}

/**
 * The Worker-side AuditStore, AlertStore and KeyStore: RPC to the state object. A stub is an
 * I/O object of the request that made it, so each call makes its own.
 */
export function stateStores(stub: () => DurableObjectStub<KeywayState>): { audit: AuditStore; alerts: AlertStore; keys: KeyStore } {
  return {
    audit: {
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
    },
    alerts: {
      observe: (event, link, options) => stub().observe(event, link, options),
      addAlerts: (drafts, delivery) => stub().addAlerts(drafts, delivery),
      setDelivery: (id, delivery, attempts) => stub().setDelivery(id, delivery, attempts),
      alerts: (limit) => stub().alerts(limit),
    },
    keys: {
      listKeys: () => stub().listKeys(),
      describeKeys: () => stub().describeKeys(),
      initializeKeys: (candidate) => stub().initializeKeys(candidate),
      advanceKeys: (plan) => stub().advanceKeys(plan),
    },
  };
}
