import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import { MAX_AUDIT_SHARDS } from '../../core/audit/audit-shards.ts';
import type { ChainHead } from '../../core/audit/checkpoint.ts';
import { readInteger, type SettingsSource } from '../../core/settings/read-settings.ts';
import type { AlertObservation, ObserveOptions } from '../../features/alerts/alert-store.ts';
import { SqliteAlertStore } from '../../storage/sqlite-alert-store.ts';
import { AuditChainObject, type RestoreOptions, type StateRestoreOutcome } from './audit-chain-object.ts';
import { readMasterKeys } from '../../core/secrets/master-keys.ts';
import { SecretBox } from '../../core/secrets/secret-box.ts';
import { ConfigError } from '../../core/settings/read-settings.ts';
import { MASTER_KEY_MISSING } from './keyway-state.ts';
import type { WorkerEnv } from './worker-broker.ts';

/** What one shard says of itself: its chain's head, and the appends this instance made since it started, with their time inside it. */
export interface AuditShardReport {
  readonly head: ChainHead;
  readonly appends: number;
  /** Milliseconds per append inside the object (the SQL insert and commit), averaged over `appends`; 0 before the first. */
  readonly append_ms: number;
}

/**
 * One shard of the audit log on Workers (KEYWAY_AUDIT_SHARDS of them): its own hash chain and its
 * own checkpoints, appended to by the exchanges of the identities it holds (auditShardOf). The
 * alert rules that read one identity's history run here, beside that history.
 */
export class AuditShardState extends AuditChainObject {
  readonly #alerts: SqliteAlertStore;
  #appends = 0;
  #appendMs = 0;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.#alerts = new SqliteAlertStore(this.db);
  }

  override async append(event: AuditEvent): Promise<ChainLink> {
    const started = performance.now();
    const link = await super.append(event);
    this.#appendMs += performance.now() - started;
    this.#appends += 1;
    return link;
  }

  observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation> {
    return this.#alerts.observe(event, link, options);
  }

  // Counters for the alert rules across identities, each kept in the shard its key (an address, a policy) hashes to.

  /**
   * Counts a refused exchange from `address` at `time` and returns how many this shard counted
   * from it since `windowStart`, this one included. Counts are kept per second and dropped once
   * older than the window: exact to the second at the window's start.
   */
  async countAddressRefusal(address: string, time: number, windowStart: number): Promise<number> {
    // Ended by a character no address holds: with `:`, an IPv6 address's prefix would be a longer address's too.
    const prefix = `alert:address:${address}/`;
    const key = (ms: number) => `${prefix}${String(Math.floor(ms / 1000)).padStart(12, '0')}`;
    const stale = await this.ctx.storage.list<number>({ prefix, end: key(windowStart), limit: 128 });
    if (stale.size > 0) await this.ctx.storage.delete([...stale.keys()]);
    await this.ctx.storage.put(key(time), ((await this.ctx.storage.get<number>(key(time))) ?? 0) + 1);
    let count = 0;
    for (const value of (await this.ctx.storage.list<number>({ prefix, start: key(windowStart) })).values()) count += value;
    return count;
  }

  /** Remembers a grant by `policy`: true the first time ever (its key always lands in this shard). */
  async firstGrantBy(policy: string, time: number): Promise<boolean> {
    const key = `alert:policy:${policy}`;
    if ((await this.ctx.storage.get<number>(key)) !== undefined) return false;
    await this.ctx.storage.put(key, time);
    return true;
  }

  /** Restores a shard's export (its chain and checkpoints), its checkpoints vouched for by the deployment's `signingKeys` (from the state's export). */
  async restoreState(text: string, options: RestoreOptions): Promise<StateRestoreOutcome> {
    const master = readMasterKeys(this.env);
    if (master === undefined) throw new ConfigError(MASTER_KEY_MISSING);
    return this.restoreFrom(text, await SecretBox.fromMasterKeys(master), options);
  }

  async report(): Promise<AuditShardReport> {
    return { head: await this.audit.head(), appends: this.#appends, append_ms: this.#appends === 0 ? 0 : this.#appendMs / this.#appends };
  }
}

export const DEFAULT_AUDIT_SHARDS = 16;

/** KEYWAY_AUDIT_SHARDS: how many shards the audit log is spread over. */
export function readAuditShards(env: SettingsSource): number {
  return readInteger(env, 'KEYWAY_AUDIT_SHARDS', DEFAULT_AUDIT_SHARDS, 1, MAX_AUDIT_SHARDS);
}

export function auditShard(namespace: DurableObjectNamespace<AuditShardState>, shard: number): DurableObjectStub<AuditShardState> {
  return namespace.get(namespace.idFromName(`audit-shard-${shard}`));
}
