import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/** SHA-256 of UTF-8 text, as lowercase hex, synchronously. */
export type Sha256Hex = (text: string) => string;

/**
 * The one SHA-256 of the code base: what logs and audit records keep instead of a token, and
 * what chains audit records. Pure JavaScript and synchronous, so it runs on every runtime and
 * inside a storage transaction; Node's audit writer thread passes its native one to the store.
 */
export const sha256Hex: Sha256Hex = (text) => bytesToHex(sha256(utf8ToBytes(text)));
