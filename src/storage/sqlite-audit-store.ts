import type { AuditEvent, AuditStore } from '../audit/audit-event.ts';
import type { SqlDatabase } from './sql-database.ts';

export class SqliteAuditStore implements AuditStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async append(event: AuditEvent): Promise<void> {
    this.#db.run(
      'INSERT INTO audit_events (id, time, decision, reason, issuer, subject, policy_id, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [
        event.id,
        Date.parse(event.time),
        event.decision,
        event.reason,
        event.issuer ?? null,
        event.subject ?? null,
        event.policy?.granted_by ?? event.policy?.denied_by[0] ?? null,
        JSON.stringify(event),
      ],
    );
  }

  async get(id: string): Promise<AuditEvent | undefined> {
    const [row] = this.#db.all<{ event: string }>('SELECT event FROM audit_events WHERE id = ?', [id]);
    return row === undefined ? undefined : (JSON.parse(row.event) as AuditEvent);
  }
}
