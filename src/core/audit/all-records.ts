import type { AuditLog, AuditRecord } from './audit-event.ts';
import type { AuditQuery } from './audit-query.ts';

/** Every record matching `query`, page by page, in the query's order. */
export async function* allRecords(audit: Pick<AuditLog, 'query'>, query: AuditQuery): AsyncGenerator<AuditRecord> {
  let after = query.after;
  for (;;) {
    const page = await audit.query({ ...query, ...(after === undefined ? {} : { after }) });
    yield* page.records;
    if (page.next === undefined) return;
    after = page.next;
  }
}
