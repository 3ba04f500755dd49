import { DELIVERY_MEMORY_DAYS, type DeliveryLog } from '../github-webhooks/delivery-log.ts';
import type { SqlDatabase } from './sql-database.ts';

/**
 * Deliveries in `github_deliveries`, keyed (column `id`) by the SHA-256 of the signed body: the primary key lets each in once;
 * entries older than the memory are pruned as new ones arrive.
 */
export class SqliteDeliveryLog implements DeliveryLog {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async claim(bodySha256: string, event: string, now: number): Promise<boolean> {
    return this.#db.transaction(() => {
      this.#db.run('DELETE FROM github_deliveries WHERE received_at < ?', [now - DELIVERY_MEMORY_DAYS * 86_400_000]);
      const sql = 'INSERT INTO github_deliveries (id, event, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id';
      return this.#db.all(sql, [bodySha256, event, now]).length === 1;
    });
  }

  async release(bodySha256: string): Promise<void> {
    this.#db.run('DELETE FROM github_deliveries WHERE id = ?', [bodySha256]);
  }
}
