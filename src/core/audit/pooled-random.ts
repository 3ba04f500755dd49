const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let next = POOL_BYTES;

/**
 * A random fraction in [0, 1) from one byte, as ulid's own generator makes it (`byte / 256`),
 * but drawn from a pool that crypto.getRandomValues refills 4 KiB at a time: ulid's default
 * asks the platform for one byte per call, sixteen calls for every id, and those calls cost
 * more than the rest of an id together.
 */
export function pooledRandom(): number {
  if (next === POOL_BYTES) {
    crypto.getRandomValues(pool);
    next = 0;
  }
  return (pool[next++] as number) / 256;
}
