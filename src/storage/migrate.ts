import type { SqlDatabase } from './sql-database.ts';

/** Schema changes, in order. Never edit a published one: append a new one. */
const MIGRATIONS: readonly { readonly id: number; readonly sql: string }[] = [
  {
    id: 1,
    sql: `
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
        created_at INTEGER NOT NULL,
        public_jwk TEXT NOT NULL,
        private_jwk TEXT NOT NULL
      );
      CREATE TABLE audit_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        time INTEGER NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        issuer TEXT,
        subject TEXT,
        policy_id TEXT,
        event TEXT NOT NULL
      );
      CREATE INDEX audit_events_time ON audit_events (time);
    `,
  },
  {
    // Single-use subject tokens (src/replay/): one row per claimed token, kept until the token expires.
    id: 2,
    sql: `
      CREATE TABLE replay_claims (
        key TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        claimed_at INTEGER NOT NULL,
        audit_event_id TEXT NOT NULL
      );
      CREATE INDEX replay_claims_expires_at ON replay_claims (expires_at);
    `,
  },
];

export function migrate(db: SqlDatabase): void {
  db.exec('CREATE TABLE IF NOT EXISTS keyway_schema (id INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = new Set(db.all<{ id: number }>('SELECT id FROM keyway_schema').map((row) => row.id));
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.id)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.run('INSERT INTO keyway_schema (id, applied_at) VALUES (?, ?)', [migration.id, Date.now()]);
    });
  }
}
