import { describe, expect, it } from 'vitest';
import { RefusalCounts, refusalKey } from '../../src/features/alerts/refusal-counts.ts';

describe('refusal counts in memory (denial_burst_address on Node)', () => {
  it('counts per address within the window, exact to the second at its start, and keeps nothing of an address once its counts are stale', () => {
    const counts = new RefusalCounts();
    const start = 1_800_000_000_000;
    expect(counts.count('1::2:3:4:5:6:7', start, start - 60_000)).toBe(1);
    expect(counts.count('1::2:3:4:5:6', start + 500, start - 60_000)).toBe(1);
    expect(counts.count('1::2:3:4:5:6:7', start + 1_000, start - 60_000)).toBe(2);
    // The window now starts at start + 1 s: the first count of 1::2:3:4:5:6:7 and the only one of 1::2:3:4:5:6 drop out.
    expect(counts.count('1::2:3:4:5:6:7', start + 61_000, start + 1_000)).toBe(2);
    expect(counts.count('1::2:3:4:5:6', start + 61_000, start + 1_000)).toBe(1);
    for (let host = 0; host < 1_000; host += 1) counts.count(`2001:db8::${host.toString(16)}`, start + 120_000, start + 60_000);
    // The two counted at start + 61 s are still within this window.
    expect(counts.keys).toBe(1_002);
    // A minute on, only the newest address counted is left.
    expect(counts.count('2001:db8::ffff', start + 181_000, start + 121_000)).toBe(1);
    expect(counts.keys).toBe(1);
  });

  it('holds at most its cap of keys: a new key takes the place of the one counted least lately, and every key counts on', () => {
    const counts = new RefusalCounts(3);
    const start = 1_800_000_000_000;
    for (const key of ['a', 'b', 'c']) expect(counts.count(key, start, start - 60_000)).toBe(1);
    expect(counts.count('a', start, start - 60_000)).toBe(2);
    // Full: d takes b's place (counted least lately; a was counted again since).
    expect(counts.count('d', start, start - 60_000)).toBe(1);
    expect(counts.count('d', start, start - 60_000)).toBe(2);
    expect(counts.keys).toBe(3);
    expect(counts.count('a', start, start - 60_000)).toBe(3);
    expect(counts.count('b', start, start - 60_000)).toBe(1);
    // A forgotten key's seconds go with it: once stale, nothing of it is left to drop.
    expect(counts.count('e', start + 61_000, start + 1_000)).toBe(1);
    expect(counts.keys).toBe(1);
  });

  it('keys an identity by its issuer and subject, however long, in 41 characters', () => {
    const long = refusalKey.identity('https://token.actions.githubusercontent.com', `repo:acme/${'x'.repeat(500)}:ref:refs/heads/main`);
    expect(long).toMatch(/^identity [0-9a-f]{32}$/);
    expect(refusalKey.identity('https://a', 'b:c')).not.toBe(refusalKey.identity('https://a:b', 'c'));
    expect(refusalKey.identity(undefined, 's')).not.toBe(refusalKey.identity('', 's'));
  });
});
