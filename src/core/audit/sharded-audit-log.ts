import type { AuditLog, AuditRecord, AuditStore, ChainLink, AuditEvent } from './audit-event.ts';
import {
  AuditQueryError,
  CURSOR_INVALID,
  rankCounts,
  STATS_TOP,
  zeroCounts,
  type AuditPage,
  type AuditQuery,
  type AuditStats,
  type AuditStatsQuery,
  type DecisionCounts,
} from './audit-query.ts';
import { auditShardOf } from './audit-shards.ts';
import { UsageCatchingUpError, type ClaimUsageRow, type UsageQuery, type UsageRow, type UsageWindow } from './inventory.ts';
import type { RunGrant } from './run-grants.ts';
import { perGroup } from '../per-group.ts';
import { KeywayError } from '../errors/keyway-error.ts';

/** A chain of a sharded log could not be read: the read is answered 503, naming it. */
export class AuditShardUnavailableError extends KeywayError {
  override readonly name = 'AuditShardUnavailableError';
  readonly code = 'audit_shard_unavailable';
}

/** One hash chain of a sharded log, by the name `audit verify` and the API call it: `legacy`, `0`, `1`, … */
export interface AuditChain {
  readonly name: string;
  readonly store: AuditStore;
}

/** What is read of one chain on its own: its checkpoints and, in chain order, its records. */
export type ChainReads = Pick<AuditStore, 'query' | 'checkpoints' | 'latestCheckpoint'>;

/** A chain that could not be read, named: answered 503. */
function unreadable(chain: string | undefined, reason: unknown): AuditShardUnavailableError {
  const why = reason instanceof Error ? reason.message : String(reason);
  return new AuditShardUnavailableError(`audit shard ${chain} cannot be read: ${why}`, { cause: reason });
}

/** The name of the sealed single chain of before the shards. */
export const LEGACY_CHAIN = 'legacy';

const ULID = /^[0-9A-Z]{26}$/;

/** The policies and repositories each chain ranks for a merge: past this many in one chain, the merged ranking may miss some. */
const MERGED_STATS_TOP = 10_000;

/**
 * The audit log of a Workers deployment: one hash chain per shard, each appended to on its own
 * (auditShardOf picks the shard), and the sealed single chain of before the shards (`legacy`).
 * Queries, stats and exports read every chain in id order and merge them in time order (ULIDs);
 * a page's cursor carries each chain's position (the last id read there), so a record is returned
 * once whichever chains move.
 */
export class ShardedAuditLog implements AuditLog {
  readonly #shards: readonly AuditStore[];
  /** Every chain read, in cursor order: the legacy one first when there is one, then the shards. */
  readonly chains: readonly AuditChain[];

  constructor(shards: readonly AuditStore[], legacy?: AuditStore) {
    this.#shards = shards;
    this.chains = [...(legacy === undefined ? [] : [{ name: LEGACY_CHAIN, store: legacy }]), ...shards.map((store, shard) => ({ name: String(shard), store }))];
  }

  /** The shard `event` is appended to, and where the rules that read its identity's history run. */
  shardOf(event: AuditEvent): number {
    return auditShardOf(event, this.#shards.length);
  }

  append(event: AuditEvent): Promise<ChainLink> {
    return (this.#shards[this.shardOf(event)] as AuditStore).append(event);
  }

  /** Each shard's events in one call to it, all shards at once; the links in the order of `events`. */
  appendAll(events: readonly AuditEvent[]): Promise<ChainLink[]> {
    return perGroup(
      events,
      (event) => this.shardOf(event),
      (shard, ofShard) => (this.#shards[shard] as AuditStore).appendAll(ofShard),
    );
  }

  async get(id: string): Promise<AuditEvent | undefined> {
    return (await this.record(id))?.event;
  }

  async record(id: string): Promise<AuditRecord | undefined> {
    return (await this.#readEvery((store) => store.record(id))).find((record) => record !== undefined);
  }

  /**
   * The reads of the chain named `name` (`legacy`, `0`, …) that a `shard=` request makes, failing as a read of the whole
   * log does when that chain cannot be read; a query it refuses stays the caller's (AuditQueryError). Undefined for no chain.
   */
  chain(name: string | undefined): ChainReads | undefined {
    const store = this.chains.find((chain) => chain.name === name)?.store;
    if (store === undefined) return undefined;
    const read = async <T>(call: () => Promise<T>): Promise<T> => {
      try {
        return await call();
      } catch (error) {
        throw error instanceof AuditQueryError ? error : unreadable(name, error);
      }
    };
    return {
      query: (query) => read(() => store.query(query)),
      checkpoints: (afterSeq, limit) => read(() => store.checkpoints(afterSeq, limit)),
      latestCheckpoint: () => read(() => store.latestCheckpoint()),
    };
  }

  /** `read` of every chain, in chain order; an AuditShardUnavailableError naming the first chain that could not be read. */
  async #readEvery<T>(read: (store: AuditStore, chain: number) => Promise<T>): Promise<T[]> {
    const settled = await Promise.allSettled(this.chains.map(({ store }, chain) => read(store, chain)));
    // Shards catching up with their usage roll-ups are one log catching up, as far behind as they are together.
    const catchingUp = settled.flatMap((outcome) => (outcome.status === 'rejected' && outcome.reason instanceof UsageCatchingUpError ? [outcome.reason] : []));
    if (catchingUp.length > 0 && catchingUp.length === settled.filter((outcome) => outcome.status === 'rejected').length) {
      throw UsageCatchingUpError.of(catchingUp);
    }
    const failed = settled.findIndex((outcome) => outcome.status === 'rejected');
    const reason = settled[failed];
    if (reason?.status === 'rejected') throw unreadable(this.chains[failed]?.name, reason.reason);
    return settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  }

  async query(query: AuditQuery): Promise<AuditPage> {
    const { after, ...rest } = query;
    const positions = after === undefined ? this.chains.map(() => '') : after.split('.');
    if (positions.length !== this.chains.length || positions.some((position) => position !== '' && !ULID.test(position))) {
      throw new AuditQueryError(CURSOR_INVALID);
    }
    // Each chain in id order, so that the merge is exactly in time order.
    const pages = await this.#readEvery((store, chain) => store.query({ ...rest, by: 'id', ...(positions[chain] ? { after: positions[chain] } : {}) }));
    const taken = pages.map(() => 0);
    const records: AuditRecord[] = [];
    const before = (a: AuditRecord, b: AuditRecord) => (query.order === 'asc' ? a.event.id < b.event.id : a.event.id > b.event.id);
    while (records.length < query.limit) {
      let best: { chain: number; record: AuditRecord } | undefined;
      for (const [chain, page] of pages.entries()) {
        const record = page.records[taken[chain] as number];
        if (record !== undefined && (best === undefined || before(record, best.record))) best = { chain, record };
      }
      if (best === undefined) break;
      records.push(best.record);
      taken[best.chain] = (taken[best.chain] as number) + 1;
    }
    const more = pages.some((page, chain) => (taken[chain] as number) < page.records.length || page.next !== undefined);
    if (!more) return { records };
    return { records, next: pages.map((page, chain) => page.records[(taken[chain] as number) - 1]?.event.id ?? positions[chain]).join('.') };
  }

  /** Usage groups add up across chains (their consumers sum them by key), so every chain's rows are returned together. */
  async usage(query: UsageQuery): Promise<UsageRow[]> {
    return (await this.#readEvery((store) => store.usage(query))).flat();
  }

  async claimUsage(window: UsageWindow): Promise<ClaimUsageRow[]> {
    return (await this.#readEvery((store) => store.claimUsage(window))).flat();
  }

  /** A run's grants are in the shards of its jobs' identities: every chain's are returned together. */
  async grantsOfRun(repositoryId: string, runId: string, at: number): Promise<RunGrant[]> {
    return (await this.#readEvery((store) => store.grantsOfRun(repositoryId, runId, at))).flat();
  }

  async stats(query: AuditStatsQuery): Promise<AuditStats> {
    const [first, ...others] = await this.#readEvery((store) => store.stats({ ...query, top: MERGED_STATS_TOP }));
    if (first === undefined) throw new RangeError('a sharded audit log has at least one chain');
    const totals = zeroCounts();
    const series = first.series.map((bucket) => ({ start: bucket.start, counts: zeroCounts() }));
    const byPolicy = new Map<string | null, DecisionCounts>();
    const byRepository = new Map<string | null, DecisionCounts>();
    for (const stats of [first, ...others]) {
      add(totals, stats.totals);
      for (const [index, bucket] of stats.series.entries()) {
        const merged = series[index];
        if (merged !== undefined) add(merged.counts, bucket.counts);
      }
      for (const { policy, counts } of stats.by_policy) byPolicy.set(policy, add(zeroCounts(), byPolicy.get(policy), counts));
      for (const { repository, counts } of stats.by_repository) byRepository.set(repository, add(zeroCounts(), byRepository.get(repository), counts));
    }
    const top = query.top ?? STATS_TOP;
    return {
      ...first,
      totals,
      series,
      by_policy: rankCounts(byPolicy, top).map(([policy, counts]) => ({ policy, counts })),
      by_repository: rankCounts(byRepository, top).map(([repository, counts]) => ({ repository, counts })),
    };
  }
}

function add(sum: Record<keyof DecisionCounts, number>, ...counts: (DecisionCounts | undefined)[]): DecisionCounts {
  for (const each of counts) {
    if (each === undefined) continue;
    for (const decision of Object.keys(sum) as (keyof DecisionCounts)[]) sum[decision] += each[decision];
  }
  return sum;
}
