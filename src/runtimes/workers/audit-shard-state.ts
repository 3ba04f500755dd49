import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import { MAX_AUDIT_SHARDS } from '../../core/audit/audit-shards.ts';
import { readAuditSettings } from '../../core/audit/audit-settings.ts';
import type { ChainHead } from '../../core/audit/checkpoint.ts';
import { readInteger, type SettingsSource } from '../../core/settings/read-settings.ts';
import type { AlertObservation, ObserveOptions } from '../../features/alerts/alert-store.ts';
import { refusalKey, type RefusalCounter } from '../../features/alerts/refusal-counts.ts';
import { SqliteAlertStore } from '../../storage/sqlite-alert-store.ts';
import { ROLLUP_BATCH } from '../../storage/sqlite-audit-usage.ts';
import { durableRefusalCounts } from './durable-refusal-counts.ts';
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
  readonly #refusals: RefusalCounter;
  #appends = 0;
  #appendMs = 0;
  /** When this instance last set the alarm for the roll-up of its appends (undefined: not since the alarm last ran). */
  #rollUpAt: number | undefined;
  /** Records appended since the alarm last ran. */
  #sinceRollUp = 0;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    // An identity's refusals are counted here, in its shard; an address's in the shard the address hashes to (countAddressRefusal).
    this.#refusals = durableRefusalCounts(ctx.storage);
    this.#alerts = new SqliteAlertStore(this.db, this.#refusals, { countsAddresses: false });
  }

  override async append(event: AuditEvent, chain: string): Promise<ChainLink> {
    return (await this.appendAll([event], chain))[0] as ChainLink;
  }

  override async appendAll(events: readonly AuditEvent[], chain: string): Promise<ChainLink[]> {
    const started = performance.now();
    const links = await super.appendAll(events, chain);
    this.#appendMs += performance.now() - started;
    this.#appends += events.length;
    this.#sinceRollUp += events.length;
    // The usage roll-up follows the appends, a round of upkeep after the first since it last ran, or at once when a batch
    // waits: at some 333 appends a second a round's worth is more than a read may sum, and reads would be refused till then.
    const batchWaits = this.#sinceRollUp >= ROLLUP_BATCH;
    if (this.#rollUpAt === undefined || (batchWaits && this.#rollUpAt > Date.now())) {
      const at = batchWaits ? Date.now() : Date.now() + readAuditSettings(this.env).checkpointSeconds * 1000;
      // Noted once set: an alarm that could not be set is tried again by the next append.
      await this.armAlarm(at);
      this.#rollUpAt = at;
    }
    return links;
  }

  /** Rolls up what was appended since the last round (usage), again soon while records are left. */
  override async alarm(): Promise<void> {
    this.#rollUpAt = undefined;
    this.#sinceRollUp = 0;
    await this.rollUpUsage();
  }

  observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation> {
    return this.#alerts.observe(event, link, options);
  }

  // Counters for the alert rules across identities, each kept in the shard its key (an address, a policy) hashes to.

  /**
   * Counts a refused exchange from `client` (a client network: clientNetwork) at `time`; returns how many this shard counted
   * from it since `windowStart`, this one included.
   */
  async countAddressRefusal(client: string, time: number, windowStart: number): Promise<number> {
    return this.#refusals.count(refusalKey.address(client), time, windowStart);
  }

  /** Remembers a grant by `policy`: true the first time ever (its key always lands in this shard). */
  async firstGrantBy(policy: string, time: number): Promise<boolean> {
    const key = `alert:policy:${policy}`;
    if ((await this.ctx.storage.get<number>(key)) !== undefined) return false;
    await this.ctx.storage.put(key, time);
    return true;
  }

  /**
   * Restores a shard's export (its chain and checkpoints) as the chain `chain` (its index), its checkpoints vouched for by
   * the deployment's `signingKeys` (from the state's export).
   */
  async restoreState(text: string, options: RestoreOptions & { readonly chain: string }): Promise<StateRestoreOutcome> {
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
