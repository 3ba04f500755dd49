import type { AuditEvent, AuditRecord, ChainLink } from '../audit/audit-event.ts';

/** An audit record as the API, exports and the CLI show it: the event's fields, plus `chain`. */
export type AuditRecordJson = AuditEvent & { readonly chain: ChainLink };

export function toRecordJson(record: AuditRecord): AuditRecordJson {
  return { ...record.event, chain: record.chain };
}

/** The inverse, for verifying an export: the event is everything but `chain`. */
export function fromRecordJson(json: AuditRecordJson): AuditRecord {
  const { chain, ...event } = json;
  return { event, chain };
}
