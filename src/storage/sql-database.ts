export type SqlValue = string | number | null;

/**
 * The synchronous SQLite both runtimes offer: better-sqlite3 on Node and a SQLite-backed
 * Durable Object's `storage.sql` on Workers. Stores are written once against this port.
 */
export interface SqlDatabase {
  /** Runs one or more statements without parameters (schema changes). */
  exec(sql: string): void;
  /**
   * `changes` is only good for "did it write anything" (`> 0`): on Workers it is the rows
   * written, index entries included, so an UPDATE of one indexed row reports 2. To count rows,
   * use `all` with `RETURNING`.
   */
  run(sql: string, params?: readonly SqlValue[]): { changes: number };
  all<Row extends Record<string, SqlValue>>(sql: string, params?: readonly SqlValue[]): Row[];
  /** Runs `fn` atomically: all of its writes commit, or none do. */
  transaction<T>(fn: () => T): T;
  /**
   * Runs `fn`'s reads on one state of the database, whatever another connection commits meanwhile, without keeping it
   * from writing: a deferred read transaction on Node; on Workers the object's own storage, which nothing else writes.
   */
  read<T>(fn: () => T): T;
}
