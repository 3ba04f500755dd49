import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AUDIT_INDEX_COLUMNS } from '../../src/core/audit/audit-index.ts';
import { canonicalEvent, chainHash } from '../../src/core/audit/chain-hash.ts';
import type { SqlDatabase } from '../../src/storage/sql-database.ts';
import type { RecordRow } from '../../src/storage/sqlite-audit-store.ts';

/**
 * Appends to the log's tail a copy of its head record, another id and a `detail` of its own, chained as the broker chains
 * records (the hash needs no key), with no MAC: what whoever can write the database, but holds no master key, can add.
 * Returns its seq.
 */
export function appendForgedRecord(db: SqlDatabase): number {
  const [head] = db.all<RecordRow>('SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1');
  if (head === undefined || head.hash === null) throw new Error('no head record to forge after');
  const forged: AuditEvent = { ...(JSON.parse(head.event) as AuditEvent), id: '01KAQN6Q00B3GQ1D5M0XW8T9ZB', detail: 'forged' };
  const { text, index } = canonicalEvent(forged);
  const seq = head.seq + 1;
  db.run(
    `INSERT INTO audit_events (seq, ${AUDIT_INDEX_COLUMNS.join(', ')}, prev_hash, hash, event) VALUES (?, ${AUDIT_INDEX_COLUMNS.map(() => '?').join(', ')}, ?, ?, ?)`,
    [seq, ...AUDIT_INDEX_COLUMNS.map((column) => index[column]), head.hash, chainHash(head.hash, forged), text],
  );
  return seq;
}
