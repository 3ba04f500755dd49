import type { AuditEvent, AuditRecord, ChainLink } from './audit-event.ts';
import type { AuditIndex } from './audit-index.ts';

/**
 * An audit record as the API, exports and the CLI show it: the event's fields, plus `chain` and
 * the `index` columns the broker's queries read (neither is hashed; `audit verify` checks both).
 */
export type AuditRecordJson = AuditEvent & { readonly chain: ChainLink; readonly index?: AuditIndex };

export function toRecordJson(record: AuditRecord): AuditRecordJson {
  return { ...record.event, chain: record.chain, ...(record.index === undefined ? {} : { index: record.index }) };
}

/** The inverse, for verifying an export: the event is everything but `chain` and `index`. */
export function fromRecordJson(json: AuditRecordJson): AuditRecord {
  const { chain, index, ...event } = json;
  return { event, chain, ...(index === undefined ? {} : { index }) };
}
