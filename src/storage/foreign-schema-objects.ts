import { migrate } from './migrate.ts';
import type { SqlDatabase } from './sql-database.ts';
import { openSqliteMemory } from './sqlite-file.ts';

type SchemaObject = { type: string; name: string; tbl_name: string; sql: string | null };

/** Every schema object as SQLite keeps it (its own too: autoindexes, sqlite_sequence), the page it starts on aside. */
function schemaObjects(db: SqlDatabase): Map<string, string> {
  const rows = db.all<SchemaObject>('SELECT type, name, tbl_name, sql FROM sqlite_master');
  return new Map(rows.map((row) => [`${row.type} ${row.name}`, JSON.stringify([row.tbl_name, row.sql])]));
}

/**
 * The schema objects of `db` that keyway's migrations up to `version` do not make, or make
 * otherwise, e.g. `trigger forget`, `view recent`, `index signing_keys_one_per_state (changed)`,
 * `table replay_claims (missing)`; empty for a database only keyway wrote. A trigger or view runs
 * inside whatever writes or reads the file (a restored broker), and a table or index defined
 * otherwise drops a constraint the broker relies on. Compared, definition text and all, with a
 * database made by the same migrations in memory.
 */
export function foreignSchemaObjects(db: SqlDatabase, version: number): string[] {
  const scratch = openSqliteMemory();
  let expected: Map<string, string>;
  try {
    migrate(scratch, version);
    expected = schemaObjects(scratch);
  } finally {
    scratch.close();
  }
  const actual = schemaObjects(db);
  const foreign = [...actual].filter(([name, definition]) => expected.get(name) !== definition);
  return [
    ...foreign.map(([name]) => (expected.has(name) ? `${name} (changed)` : name)),
    ...[...expected.keys()].filter((name) => !actual.has(name)).map((name) => `${name} (missing)`),
  ];
}
