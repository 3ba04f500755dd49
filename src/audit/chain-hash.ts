import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';
import type { AuditEvent } from './audit-event.ts';

/** The predecessor of the first record ever written. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The hash that chains one record to the one before it: SHA-256 over the RFC 8785 (JCS)
 * encoding of `{"event": <the event>, "prev_hash": <hex>}`, as lowercase hex. Anyone can
 * recompute it from an export with any JCS implementation. Synchronous (a pure-JS SHA-256)
 * so that the head can be read, extended and written inside one storage transaction.
 */
export function chainHash(prevHash: string, event: AuditEvent): string {
  const encoded = canonicalize({ event, prev_hash: prevHash });
  if (encoded === undefined) throw new TypeError('an audit event must be a JSON object');
  return bytesToHex(sha256(utf8ToBytes(encoded)));
}

/**
 * The event as it will be stored: plain JSON, every string well-formed Unicode. A subject
 * token can carry a lone surrogate (`"sub":"\ud800"`), which JCS refuses to encode; it is
 * recorded as U+FFFD instead, so a hostile token is refused with a record, not a 503.
 */
export function storableEvent(event: AuditEvent): AuditEvent {
  return wellFormed(JSON.parse(JSON.stringify(event))) as AuditEvent;
}

function wellFormed(value: unknown): unknown {
  if (typeof value === 'string') return value.toWellFormed();
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.toWellFormed(), wellFormed(inner)]));
  }
  return value;
}
