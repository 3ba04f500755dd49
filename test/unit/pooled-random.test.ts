import { monotonicFactory } from 'ulid';
import { describe, expect, it } from 'vitest';
import { pooledRandom, pooledRandom16 } from '../../src/core/mint/pooled-random.ts';

describe('pooledRandom', () => {
  it('gives the fractions ulid draws from a random byte, across pool refills', () => {
    const values = Array.from({ length: 3 * 4096 + 7 }, pooledRandom);
    for (const value of values) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
      expect(Number.isInteger(value * 256)).toBe(true);
    }
    // 12,295 draws of 256 equally likely bytes: each byte appears (a miss has probability about 256 · e^-48).
    expect(new Set(values).size).toBe(256);
  });

  it('makes ulid ids that are unique and sorted, in one millisecond and across many', () => {
    const nextId = monotonicFactory(pooledRandom);
    const ids = Array.from({ length: 5000 }, (_, index) => nextId(1_800_000_000_000 + Math.floor(index / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('pooledRandom16', () => {
  it('gives 16 bytes at a time, none shared between draws, across pool refills and after single bytes', () => {
    pooledRandom();
    const draws = Array.from({ length: 600 }, () => Array.from(pooledRandom16(), (byte) => byte.toString(16).padStart(2, '0')).join(''));
    for (const draw of draws) expect(draw).toHaveLength(32);
    expect(new Set(draws).size).toBe(draws.length);
  });
});
