import { DELIVERY_LEASE_SECONDS, DELIVERY_MEMORY_DAYS, type DeliveryLog } from '../features/github/webhooks/delivery-log.ts';
import type { SqlDatabase } from './sql-database.ts';

/**
 * Deliveries in `github_deliveries`, keyed (column `id`) by the delivery's key (its event and signed body): the
 * primary key lets one copy in at a time, `handled_at` marks it done (NULL while it is handled);
 * entries older than the memory are pruned as new ones arrive.
 */
export class SqliteDeliveryLog implements DeliveryLog {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async claim(key: string, event: string, now: number): Promise<boolean> {
    return this.#db.transaction(() => {
      this.#db.run('DELETE FROM github_deliveries WHERE received_at < ?', [now - DELIVERY_MEMORY_DAYS * 86_400_000]);
      // A new delivery, or one whose claim outlived its lease without finishing (its handler died), is this copy's.
      const sql = `INSERT INTO github_deliveries (id, event, received_at) VALUES (?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET event = excluded.event, received_at = excluded.received_at
          WHERE github_deliveries.handled_at IS NULL AND github_deliveries.received_at <= ?
        RETURNING id`;
      return this.#db.all(sql, [key, event, now, now - DELIVERY_LEASE_SECONDS * 1000]).length === 1;
    });
  }

  async finish(key: string, now: number): Promise<void> {
    this.#db.run('UPDATE github_deliveries SET handled_at = ? WHERE id = ?', [now, key]);
  }

  async release(key: string): Promise<void> {
    this.#db.run('DELETE FROM github_deliveries WHERE id = ?', [key]);
  }
}
