import type { Sha256Hex } from '../mint/sha256-hex.ts';

/**
 * The token's `aud` in the subject limit's bucket key: as JSON, or its SHA-256 when long. A job can have its issuer mint
 * tokens for as many audiences as it likes, each a bucket the limiter keeps (up to MAX_BUCKETS), so the key is bounded as
 * a `sub` needs not be. No JSON text is 64 hex digits, so the two forms never meet.
 */
export function audienceBucketKey(aud: unknown, sha256Hex: Sha256Hex): string {
  const written = JSON.stringify(aud ?? null);
  return written.length <= MAX_AUDIENCE_KEY ? written : sha256Hex(written);
}

const MAX_AUDIENCE_KEY = 128;
