import Database from 'better-sqlite3';
import type { SqlDatabase, SqlValue } from '../storage/sql-database.ts';

export interface SqliteFile extends SqlDatabase {
  close(): void;
}

/**
 * A SQLite file through better-sqlite3: WAL for concurrent readers, synchronous=FULL so a
 * committed audit record survives a power cut, prepared statements cached by SQL text.
 */
export function openSqliteFile(path: string): SqliteFile {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  return {
    exec: (sql) => void db.exec(sql),
    run: (sql, params: readonly SqlValue[] = []) => ({ changes: prepare(sql).run(...params).changes }),
    all: <Row>(sql: string, params: readonly SqlValue[] = []) => prepare(sql).all(...params) as Row[],
    transaction: (fn) => db.transaction(fn)(),
    close: () => db.close(),
  };
}
