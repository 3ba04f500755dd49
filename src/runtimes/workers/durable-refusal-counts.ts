import type { RefusalCounter } from '../../features/alerts/refusal-counts.ts';

/** Refusals per address and second, and the same keys by second first, so the stale ones of every address are found. */
const REFUSALS = 'alert:refusals:';
const REFUSALS_BY_SECOND = 'alert:refusals-at:';
/** Where an older keyway kept the counts, with no index by second: dropped a batch at a time (a burst over the upgrade is counted afresh). */
const LEGACY_REFUSALS = 'alert:address:';
const SECOND_DIGITS = 12;
/** Stale counts dropped per count, at most (each two keys, with legacy ones within one delete's 128): a count adds one, so they never pile up. */
const STALE_PER_COUNT = 32;

/**
 * Refusal counts in a Durable Object's storage, per address and second. Counts are dropped once
 * older than the window, whatever the address: exact to the second at the window's start, and
 * addresses never seen again (an IPv6 client cycling through its /64) leave nothing behind.
 */
export function durableRefusalCounts(storage: DurableObjectStorage): RefusalCounter {
  let legacyCounts = true;
  const second = (ms: number) => String(Math.floor(ms / 1000)).padStart(SECOND_DIGITS, '0');
  // Ended by a character no address holds: with `:`, an IPv6 address's prefix would be a longer address's too.
  const counted = (at: string, from: string) => `${REFUSALS}${from}/${at}`;
  const indexed = (at: string, from: string) => `${REFUSALS_BY_SECOND}${at}/${from}`;
  return {
    async count(address, time, windowStart) {
      const stale = await storage.list<true>({ prefix: REFUSALS_BY_SECOND, end: indexed(second(windowStart), ''), limit: STALE_PER_COUNT });
      const staleCounts = [...stale.keys()].map((key) => {
        const rest = key.slice(REFUSALS_BY_SECOND.length);
        return counted(rest.slice(0, SECOND_DIGITS), rest.slice(SECOND_DIGITS + 1));
      });
      const legacy = legacyCounts ? await storage.list({ prefix: LEGACY_REFUSALS, limit: STALE_PER_COUNT }) : new Map<string, unknown>();
      if (legacy.size === 0) legacyCounts = false;
      const dropped = [...stale.keys(), ...staleCounts, ...legacy.keys()];
      if (dropped.length > 0) await storage.delete(dropped);
      const at = second(time);
      await storage.put({ [counted(at, address)]: ((await storage.get<number>(counted(at, address))) ?? 0) + 1, [indexed(at, address)]: true });
      let count = 0;
      const mine = `${REFUSALS}${address}/`;
      for (const value of (await storage.list<number>({ prefix: mine, start: `${mine}${second(windowStart)}` })).values()) count += value;
      return count;
    },
  };
}
