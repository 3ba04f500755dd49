import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { base64url } from 'jose';
import { parseMasterKey } from '../secrets/master-keys.ts';
import type { SettingsSource } from '../settings/read-settings.ts';

/** A nonce is good for the period it was handed out in and the next one: 5 to 10 minutes. */
export const DPOP_NONCE_PERIOD_SECONDS = 300;

/**
 * RFC 9449 §8 server nonces, stateless: a nonce is the HMAC of its period's number under a key
 * every instance shares, so any Node process or Worker isolate recognises any other's nonce
 * without storing one. A proof made before the period it names cannot exist, which bounds how
 * far ahead a job (or a thief with the job's key) can prepare proofs.
 */
export class DpopNonces {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** The nonce to hand out now (milliseconds since the epoch). */
  current(now: number): string {
    return this.#nonce(period(now));
  }

  /** Whether a proof's nonce is this period's or the last one's. */
  isCurrent(nonce: string, now: number): boolean {
    const at = period(now);
    return nonce === this.#nonce(at) || nonce === this.#nonce(at - 1);
  }

  #nonce(number: number): string {
    return base64url.encode(hmac(sha256, this.#key, utf8ToBytes(`keyway dpop nonce\n${number}`)));
  }
}

function period(now: number): number {
  return Math.floor(now / 1000 / DPOP_NONCE_PERIOD_SECONDS);
}

/** KEYWAY_DPOP_NONCE_KEY (32 random bytes, base64): when set, every DPoP proof at /token must carry a current server nonce. */
export function readDpopNonces(env: SettingsSource): DpopNonces | undefined {
  const key = env['KEYWAY_DPOP_NONCE_KEY'];
  if (typeof key !== 'string' || key === '') return undefined;
  return new DpopNonces(parseMasterKey(key, 'KEYWAY_DPOP_NONCE_KEY'));
}
