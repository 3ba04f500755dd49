import { describe, expect, it } from 'vitest';
import { audienceBucketKeys } from '../../src/core/limits/audience-bucket-key.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';

describe('the audiences in the subject limit bucket keys', () => {
  it('is each audience as JSON while short, so each audience is a bucket of its own', () => {
    expect(audienceBucketKeys('https://keyway.acme.dev', sha256Hex)).toEqual(['"https://keyway.acme.dev"']);
    expect(audienceBucketKeys(['a', 'b'], sha256Hex)).toEqual(['"a"', '"b"']);
    expect(audienceBucketKeys(undefined, sha256Hex)).toEqual(['null']);
    expect(audienceBucketKeys([], sha256Hex)).toEqual(['[]']);
  });

  it('is the same buckets however a list is written: its order, a duplicate or a list of one change no key', () => {
    const keys = audienceBucketKeys(['a', 'b'], sha256Hex);
    expect(audienceBucketKeys(['b', 'a'], sha256Hex)).toEqual(keys);
    expect(audienceBucketKeys(['b', 'a', 'b'], sha256Hex)).toEqual(keys);
    expect(audienceBucketKeys(['a'], sha256Hex)).toEqual(audienceBucketKeys('a', sha256Hex));
    expect(audienceBucketKeys(['a', 'a'], sha256Hex)).toEqual(audienceBucketKeys('a', sha256Hex));
  });

  it('is one key every list of more than four audiences shares, so a request spends a bounded number of buckets', () => {
    expect(audienceBucketKeys(['a', 'b', 'c', 'd'], sha256Hex)).toEqual(['"a"', '"b"', '"c"', '"d"']);
    expect(audienceBucketKeys(['a', 'b', 'c', 'd', 'e'], sha256Hex)).toEqual(['*']);
    expect(audienceBucketKeys(['a', 'b', 'c', 'd', 'f'], sha256Hex)).toEqual(['*']);
    expect(audienceBucketKeys(['a', 'b', 'c', 'd', 'd'], sha256Hex)).toHaveLength(4);
  });

  it('is bounded however long an audience a job has its issuer mint, and still tells long audiences apart', () => {
    const long = `https://${'x'.repeat(8000)}.example`;
    const [key] = audienceBucketKeys(long, sha256Hex);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(key).toBe(sha256Hex(JSON.stringify(long)));
    expect(audienceBucketKeys(`${long}/`, sha256Hex)).not.toEqual([key]);
    expect(audienceBucketKeys([long, 'a'], sha256Hex)).toEqual(['"a"', key]);
    // 128 characters of JSON are a key as they are; one more, and it is the hash.
    const atMost = 'x'.repeat(126);
    expect(audienceBucketKeys(atMost, sha256Hex)).toEqual([`"${atMost}"`]);
    expect(audienceBucketKeys(`${atMost}x`, sha256Hex)).toEqual([sha256Hex(`"${atMost}x"`)]);
  });
});
