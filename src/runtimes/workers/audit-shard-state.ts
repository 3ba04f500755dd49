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

/** Refusals per address and second, and the same keys by second first, so the stale ones of every address are found. */
const REFUSALS = 'alert:refusals:';
const REFUSALS_BY_SECOND = 'alert:refusals-at:';
/** Where an older keyway kept the counts, with no index by second: dropped a batch at a time (a burst over the upgrade is counted afresh). */
const LEGACY_REFUSALS = 'alert:address:';
const SECOND_DIGITS = 12;
/** Stale counts dropped per count, at most (each two keys, with legacy ones within one delete's 128): a count adds one, so they never pile up. */
const STALE_PER_COUNT = 32;

/**
 * One shard of the audit log on Workers (KEYWAY_AUDIT_SHARDS of them): its own hash chain and its
 * own checkpoints, appended to by the exchanges of the identities it holds (auditShardOf). The
 * alert rules that read one identity's history run here, beside that history.
 */
export class AuditShardState extends AuditChainObject {
  readonly #alerts: SqliteAlertStore;
  #appends = 0;
  #appendMs = 0;
  /** Whether counts kept by an older keyway, under keys with no index by second, may be left to drop. */
  #legacyCounts = true;

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
   * older than the window, whatever the address: exact to the second at the window's start, and
   * addresses never seen again (an IPv6 client cycling through its /64) leave nothing behind.
   */
  async countAddressRefusal(address: string, time: number, windowStart: number): Promise<number> {
    const second = (ms: number) => String(Math.floor(ms / 1000)).padStart(SECOND_DIGITS, '0');
    // Ended by a character no address holds: with `:`, an IPv6 address's prefix would be a longer address's too.
    const counted = (at: string, from: string) => `${REFUSALS}${from}/${at}`;
    const indexed = (at: string, from: string) => `${REFUSALS_BY_SECOND}${at}/${from}`;
    const stale = await this.ctx.storage.list<true>({ prefix: REFUSALS_BY_SECOND, end: indexed(second(windowStart), ''), limit: STALE_PER_COUNT });
    const staleCounts = [...stale.keys()].map((key) => {
      const rest = key.slice(REFUSALS_BY_SECOND.length);
      return counted(rest.slice(0, SECOND_DIGITS), rest.slice(SECOND_DIGITS + 1));
    });
    const legacy = this.#legacyCounts ? await this.ctx.storage.list({ prefix: LEGACY_REFUSALS, limit: STALE_PER_COUNT }) : new Map();
    if (legacy.size === 0) this.#legacyCounts = false;
    const dropped = [...stale.keys(), ...staleCounts, ...legacy.keys()];
    if (dropped.length > 0) await this.ctx.storage.delete(dropped);
    const at = second(time);
    await this.ctx.storage.put({ [counted(at, address)]: ((await this.ctx.storage.get<number>(counted(at, address))) ?? 0) + 1, [indexed(at, address)]: true });
    let count = 0;
    const mine = `${REFUSALS}${address}/`;
    for (const value of (await this.ctx.storage.list<number>({ prefix: mine, start: `${mine}${second(windowStart)}` })).values()) count += value;
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
