import type { SqlDatabase, SqlValue } from '../../storage/sql-database.ts';

/** The SqlDatabase port over a SQLite-backed Durable Object's storage. */
export function durableObjectSql(storage: DurableObjectStorage): SqlDatabase {
  return {
    exec: (sql) => void storage.sql.exec(sql),
    run: (sql, params: readonly SqlValue[] = []) => {
      const cursor = storage.sql.exec(sql, ...params);
      cursor.toArray();
      return { changes: cursor.rowsWritten };
    },
    all: <Row extends Record<string, SqlValue>>(sql: string, params: readonly SqlValue[] = []) => storage.sql.exec<Row>(sql, ...params).toArray(),
    transaction: (fn) => storage.transactionSync(fn),
    read: (fn) => fn(),
  };
}
