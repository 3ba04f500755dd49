import { sha256 } from '@noble/hashes/sha2.js';
import { base64url } from 'jose';
import { ConfigError, type SettingsSource } from '../settings/read-settings.ts';

/** 256 bits, the AES-256-GCM key size. */
const KEY_BYTES = 32;

/**
 * The master keys secrets are sealed under: `current` seals and opens, `previous` only opens,
 * so the master key can be changed without losing what was sealed under the old one.
 */
export interface MasterKeys {
  readonly current: Uint8Array;
  readonly previous: readonly Uint8Array[];
}

/** A master key as written in settings: 32 random bytes, base64url or base64 (`openssl rand -base64 32`). */
export function parseMasterKey(text: string, name: string): Uint8Array {
  const normalized = text.trim().replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
  // A length of 4n+1 is no whole number of bytes: atob would throw a DOMException of its own.
  if (!/^[A-Za-z0-9_-]+$/.test(normalized) || normalized.length % 4 === 1)
    throw new ConfigError(`${name} is not base64: generate one with \`openssl rand -base64 32\``);
  const bytes = Uint8Array.from(atob(normalized.replaceAll('-', '+').replaceAll('_', '/')), (char) => char.charCodeAt(0));
  if (bytes.length !== KEY_BYTES)
    throw new ConfigError(`${name} must be ${KEY_BYTES} random bytes, not ${bytes.length}: generate one with \`openssl rand -base64 32\``);
  return bytes;
}

/**
 * `KEYWAY_MASTER_KEY` and, while sealed secrets are being moved to a new one,
 * `KEYWAY_MASTER_KEY_PREVIOUS` (comma-separated). Undefined when no master key is set.
 */
export function readMasterKeys(env: SettingsSource): MasterKeys | undefined {
  const current = env['KEYWAY_MASTER_KEY'];
  const previous = env['KEYWAY_MASTER_KEY_PREVIOUS'];
  if (typeof previous === 'string' && previous !== '' && (typeof current !== 'string' || current === '')) {
    throw new ConfigError('KEYWAY_MASTER_KEY_PREVIOUS is set without KEYWAY_MASTER_KEY');
  }
  if (typeof current !== 'string' || current === '') return undefined;
  return {
    current: parseMasterKey(current, 'KEYWAY_MASTER_KEY'),
    previous:
      typeof previous === 'string' && previous !== '' ? previous.split(',').map((key, i) => parseMasterKey(key, `KEYWAY_MASTER_KEY_PREVIOUS[${i}]`)) : [],
  };
}

/** A new random master key, base64url. */
export function generateMasterKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '');
}

/** A master key's id, which sealed secrets, attestations and record MACs name: it commits to the key without revealing it (a domain-separated hash). */
export function masterKeyId(raw: Uint8Array): string {
  const label = new TextEncoder().encode('keyway master key id\0');
  return base64url.encode(sha256(new Uint8Array([...label, ...raw])).slice(0, 12));
}
