import Database from 'better-sqlite3';
import type { SqlDatabase, SqlValue } from './sql-database.ts';
import { createPrivateFile } from './private-data-dir.ts';

/** The broker's database, in its data directory. */
export const DATABASE_FILE = 'keyway.db';

/** The most pages better-sqlite3 copies in one backup step. */
const ALL_PAGES = 0x7fffffff;

export interface SqliteFile extends SqlDatabase {
  /** The file's path, as it was opened. */
  readonly path: string;
  /**
   * SQLite's online backup of this database into `destination` (an empty or absent file), all
   * pages in one step: one read transaction, so the copy is one consistent state, and in WAL mode
   * writers (the running broker) go on meanwhile. The copy is left out of WAL mode, one file.
   */
  backup(destination: string): Promise<void>;
  /**
   * Copies every frame of the WAL into the database file and empties the WAL: what a write overwrote or deleted (zeroed in
   * its page by `secure_delete`) is then on disk only as it is now, in no older frame. It waits for no lock: false when a
   * writer or a reader kept the copy from finishing, and the older frames then last until the WAL's next restart overwrites them.
   */
  truncateWal(): boolean;
  close(): void;
}

/**
 * A SQLite file through better-sqlite3: WAL for concurrent readers, synchronous=FULL so a
 * committed audit record survives a power cut, prepared statements cached by SQL text.
 * Transactions begin IMMEDIATE: one that reads the chain's head and then extends it holds the
 * write lock from its first read, so two writers can never fork the chain.
 * `readonly` opens an existing file for reading only (the `keyway audit` CLI); `existing` opens
 * one for writing but never creates it (a second connection to the broker's file, which must not
 * make an empty database where the file went missing). A new file is created 0600, so its -wal and
 * -shm files are too.
 */
export function openSqliteFile(path: string, options: { readonly?: boolean; existing?: boolean } = {}): SqliteFile {
  if (options.readonly !== true && options.existing !== true) createPrivateFile(path);
  const db = new Database(path, { readonly: options.readonly === true, fileMustExist: options.readonly === true || options.existing === true });
  if (options.readonly !== true) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // A deleted or overwritten value (a removed key's sealed private part) is zeroed in its page, not left in its free space.
    db.pragma('secure_delete = FAST');
  }
  db.pragma('busy_timeout = 5000');
  return wrap(db);
}

/** A new, empty database in memory, gone when closed: a scratch schema to compare a file's with. */
export function openSqliteMemory(): SqliteFile {
  return wrap(new Database(':memory:'));
}

function wrap(db: Database.Database): SqliteFile {
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
    path: db.name,
    exec: (sql) => void db.exec(sql),
    run: (sql, params: readonly SqlValue[] = []) => ({ changes: prepare(sql).run(...params).changes }),
    all: <Row>(sql: string, params: readonly SqlValue[] = []) => prepare(sql).all(...params) as Row[],
    transaction: (fn) => db.transaction(fn).immediate(),
    read: (fn) => db.transaction(fn).deferred(),
    async backup(destination) {
      await db.backup(destination, { progress: () => ALL_PAGES });
      // One self-contained file: out of WAL mode, so reading it later leaves no -wal and -shm beside it.
      const copy = new Database(destination);
      try {
        copy.pragma('journal_mode = DELETE');
      } finally {
        copy.close();
      }
    },
    truncateWal: () => {
      // Without waiting: on the thread that serves requests, a busy writer or a long reader would hold it up to the busy
      // timeout. A WAL that busy starts over soon anyway, overwriting its older frames.
      const timeout = db.pragma('busy_timeout', { simple: true }) as number;
      db.pragma('busy_timeout = 0');
      try {
        return (db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[])[0]?.busy === 0;
      } finally {
        db.pragma(`busy_timeout = ${timeout}`);
      }
    },
    close: () => db.close(),
  };
}
