import { sha256Hex, type Sha256Hex } from '../mint/sha256-hex.ts';
import type { AuditEvent } from './audit-event.ts';
import { AUDIT_INDEX_COLUMNS, auditIndex, type AuditIndex } from './audit-index.ts';
import { jcs } from './jcs.ts';
import { runGrantsOf, type RunGrant } from './run-grants.ts';

/** The predecessor of the first record ever written. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The hash that chains one record to the one before it: SHA-256 over the RFC 8785 (JCS)
 * encoding of `{"event": <the event>, "prev_hash": <hex>}`, as lowercase hex. Anyone can
 * recompute it from an export with any JCS implementation. Synchronous, so that the head can
 * be read, extended and written inside one storage transaction.
 */
export function chainHash(prevHash: string, event: AuditEvent, digest: Sha256Hex = sha256Hex): string {
  const encoded = jcs({ event, prev_hash: prevHash });
  if (encoded === undefined) throw new TypeError('an audit event must be a JSON object');
  return digest(encoded);
}

/**
 * `chainHash` for an event given as its JCS text (`canonicalEvent`): the same SHA-256 over the
 * same bytes, since JCS orders `event` before `prev_hash`, without encoding the event again.
 */
export function chainHashOfCanonical(prevHash: string, canonicalText: string, digest: Sha256Hex = sha256Hex): string {
  return digest(`{"event":${canonicalText},"prev_hash":"${prevHash}"}`);
}

/** An event as the log stores and hashes it: its JCS text, and the index columns and the run grants derived from it. */
export interface CanonicalEvent {
  readonly text: string;
  readonly index: AuditIndex;
  readonly runGrants: readonly RunGrant[];
}

/**
 * An event in the one form the log keeps: its JCS (RFC 8785) text, which is what is stored,
 * what the chain hashes and plain JSON, encoded once. What JCS cannot encode as it is gets the
 * form JSON.stringify gives it, so that a hostile token is refused with a record, not a 503: a
 * lone surrogate (`"sub":"\ud800"`) is recorded as U+FFFD, a number JSON has no form for (a
 * claim of `1e400` parses to Infinity) as null.
 */
export function canonicalEvent(event: AuditEvent): CanonicalEvent {
  try {
    return encoded(event);
  } catch {
    return encoded(wellFormed(JSON.parse(JSON.stringify(event))) as AuditEvent);
  }
}

/**
 * An event in its canonical form as another process sent it (a follower's batch to the leader's
 * writer, KEYWAY_PROCESSES), held to being what `canonicalEvent` makes: its text the JCS text of
 * a JSON object, and its index the columns `auditIndex` derives from that object. Throws a
 * TypeError saying which it is not, so that nothing else is stored (or hashed into the chain) as a
 * record. One parse and one encoding per event: the members of a canonical text parse in JCS
 * order, so `jcs` encodes them with JSON.stringify.
 */
export function checkedCanonicalEvent(sent: unknown): CanonicalEvent {
  const { text, index } = (typeof sent === 'object' && sent !== null ? sent : {}) as Record<string, unknown>;
  if (typeof text !== 'string') throw new TypeError('an audit event without its text');
  let event: unknown;
  try {
    event = JSON.parse(text);
  } catch {
    throw new TypeError('an audit event whose text is not JSON');
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new TypeError('an audit event whose text is not a JSON object');
  if (jcs(event) !== text) throw new TypeError('an audit event whose text is not the canonical (JCS) text of its event');
  let derived: AuditIndex;
  try {
    derived = auditIndex(event as AuditEvent);
  } catch {
    throw new TypeError('an audit event without the members its index columns come from');
  }
  const sentIndex = (typeof index === 'object' && index !== null ? index : {}) as Record<string, unknown>;
  const column = AUDIT_INDEX_COLUMNS.find((name) => sentIndex[name] !== derived[name]);
  if (column !== undefined) throw new TypeError(`an audit event whose ${column} column is not the one its event gives`);
  return { text, index: derived, runGrants: runGrantsOf(event as AuditEvent) };
}

function encoded(event: AuditEvent): CanonicalEvent {
  const text = jcs(event);
  if (text === undefined) throw new TypeError('an audit event must be a JSON object');
  return { text, index: auditIndex(event), runGrants: runGrantsOf(event) };
}

function wellFormed(value: unknown): unknown {
  if (typeof value === 'string') return value.toWellFormed();
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.toWellFormed(), wellFormed(inner)]));
  }
  return value;
}
