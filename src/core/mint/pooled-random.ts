const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let next = POOL_BYTES;

function take(count: number): number {
  if (next + count > POOL_BYTES) {
    crypto.getRandomValues(pool);
    next = 0;
  }
  const at = next;
  next += count;
  return at;
}

/**
 * A random fraction in [0, 1) from one byte, as ulid's own generator makes it (`byte / 256`),
 * but drawn from a pool that crypto.getRandomValues refills 4 KiB at a time: ulid's default
 * asks the platform for one byte per call, sixteen calls for every id, and those calls cost
 * more than the rest of an id together.
 */
export function pooledRandom(): number {
  return (pool[take(1)] as number) / 256;
}

/** 16 random bytes from the same pool, for a UUID: a view to read at once, before the next draw. */
export function pooledRandom16(): Uint8Array {
  const at = take(16);
  return pool.subarray(at, at + 16);
}
