import canonicalize from 'canonicalize';
import { sha256Hex, type Sha256Hex } from '../mint/sha256-hex.ts';
import type { AuditEvent } from './audit-event.ts';

/** The predecessor of the first record ever written. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The hash that chains one record to the one before it: SHA-256 over the RFC 8785 (JCS)
 * encoding of `{"event": <the event>, "prev_hash": <hex>}`, as lowercase hex. Anyone can
 * recompute it from an export with any JCS implementation. Synchronous, so that the head can
 * be read, extended and written inside one storage transaction.
 */
export function chainHash(prevHash: string, event: AuditEvent, digest: Sha256Hex = sha256Hex): string {
  const encoded = canonicalize({ event, prev_hash: prevHash });
  if (encoded === undefined) throw new TypeError('an audit event must be a JSON object');
  return digest(encoded);
}

/**
 * An event as it will be stored, from its JSON.stringify text: plain JSON, every string
 * well-formed Unicode. A subject token can carry a lone surrogate (`"sub":"\ud800"`), which
 * JCS refuses to encode; it is recorded as U+FFFD instead, so a hostile token is refused with
 * a record, not a 503.
 */
export function storableEvent(text: string): { readonly event: AuditEvent; readonly text: string } {
  const parsed = JSON.parse(text) as AuditEvent;
  // JSON.stringify escapes every lone surrogate, so text without such an escape needs no repair.
  if (!LONE_SURROGATE_ESCAPE.test(text)) return { event: parsed, text };
  const event = wellFormed(parsed) as AuditEvent;
  return { event, text: JSON.stringify(event) };
}

const LONE_SURROGATE_ESCAPE = /\\ud[89a-f][0-9a-f]{2}/i;

function wellFormed(value: unknown): unknown {
  if (typeof value === 'string') return value.toWellFormed();
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.toWellFormed(), wellFormed(inner)]));
  }
  return value;
}
