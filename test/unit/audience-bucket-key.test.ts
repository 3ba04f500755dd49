import { describe, expect, it } from 'vitest';
import { audienceBucketKey } from '../../src/core/limits/audience-bucket-key.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';

describe('the audience in the subject limit bucket key', () => {
  it('is the aud as JSON while short, so each audience is a bucket of its own', () => {
    expect(audienceBucketKey('https://keyway.acme.dev', sha256Hex)).toBe('"https://keyway.acme.dev"');
    expect(audienceBucketKey(['a', 'b'], sha256Hex)).toBe('["a","b"]');
    expect(audienceBucketKey(undefined, sha256Hex)).toBe('null');
  });

  it('is bounded however long an audience a job has its issuer mint, and still tells long audiences apart', () => {
    const long = `https://${'x'.repeat(8000)}.example`;
    const key = audienceBucketKey(long, sha256Hex);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(key).toBe(sha256Hex(JSON.stringify(long)));
    expect(audienceBucketKey(`${long}/`, sha256Hex)).not.toBe(key);
    expect(audienceBucketKey([long], sha256Hex)).not.toBe(key);
  });
});
