import type { RefusalCounter } from '../../features/alerts/refusal-counts.ts';

/** Refusals per key and second, and the same by second first, so the stale ones of every key are found. */
const REFUSALS = 'alert:refusals:';
const REFUSALS_BY_SECOND = 'alert:refusals-at:';
/** Where an older keyway kept the counts, with no index by second: dropped a batch at a time (a burst over the upgrade is counted afresh). */
const LEGACY_REFUSALS = 'alert:address:';
const SECOND_DIGITS = 12;
/** Stale counts dropped per count, at most (each two keys, with legacy ones within one delete's 128): a count adds one, so they never pile up. */
const STALE_PER_COUNT = 32;

/**
 * Refusal counts in a Durable Object's storage, per key (refusalKey) and second. Counts are dropped once older than the
 * window, whatever the key: exact to the second at the window's start, and keys never seen again (an IPv6 client cycling
 * through its /64) leave nothing behind.
 */
export function durableRefusalCounts(storage: DurableObjectStorage): RefusalCounter {
  let legacyCounts = true;
  const second = (ms: number) => String(Math.floor(ms / 1000)).padStart(SECOND_DIGITS, '0');
  // Keys percent-encoded, and ended by `/`, which none then holds: one key's prefix is never another's (an IPv6 address's
  // a longer one's, an identity's subject another's).
  const counted = (at: string, encoded: string) => `${REFUSALS}${encoded}/${at}`;
  const indexed = (at: string, encoded: string) => `${REFUSALS_BY_SECOND}${at}/${encoded}`;
  return {
    async count(key, time, windowStart) {
      const encoded = encodeURIComponent(key);
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
      await storage.put({ [counted(at, encoded)]: ((await storage.get<number>(counted(at, encoded))) ?? 0) + 1, [indexed(at, encoded)]: true });
      let count = 0;
      const mine = `${REFUSALS}${encoded}/`;
      for (const value of (await storage.list<number>({ prefix: mine, start: `${mine}${second(windowStart)}` })).values()) count += value;
      return count;
    },
  };
}
