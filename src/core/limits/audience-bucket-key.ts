import type { Sha256Hex } from '../mint/sha256-hex.ts';

/**
 * The subject limit's buckets a token's `aud` spends, one an audience: each audience it names, as JSON (its SHA-256 when
 * long), deduplicated and sorted. A list spends the bucket of every audience in it, so that one that names the broker's,
 * in whatever order, twice or beside audiences a job invents, spends the broker's audience's bucket as its plain `aud`
 * does; and what it spends depends on nothing the policies accept, so it tells a stranger nothing about them. A list of
 * more than MAX_AUDIENCE_BUCKETS audiences spends one bucket all such lists share instead, so a request takes a bounded
 * number of buckets (on Workers each a Durable Object call).
 * A job can have its issuer mint tokens for as many audiences as it likes, each a bucket the limiter keeps (up to
 * MAX_BUCKETS), so a key is bounded as a `sub` needs not be. No JSON text is 64 hex digits or `*`, so the forms never meet.
 */
export function audienceBucketKeys(aud: unknown, sha256Hex: Sha256Hex): readonly string[] {
  const named = Array.isArray(aud) && aud.length > 0 ? aud : [aud ?? null];
  const keys = [...new Set(named.map((audience) => bounded(JSON.stringify(audience ?? null), sha256Hex)))].sort();
  return keys.length > MAX_AUDIENCE_BUCKETS ? [MANY_AUDIENCES] : keys;
}

function bounded(written: string, sha256Hex: Sha256Hex): string {
  return written.length <= MAX_AUDIENCE_KEY ? written : sha256Hex(written);
}

const MAX_AUDIENCE_KEY = 128;
const MAX_AUDIENCE_BUCKETS = 4;
const MANY_AUDIENCES = '*';
