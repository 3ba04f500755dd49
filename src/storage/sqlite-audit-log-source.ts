import { createLocalJWKSet } from 'jose';
import { allRecords } from '../core/audit/all-records.ts';
import type { Checkpoint } from '../core/audit/checkpoint.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { SqlDatabase } from './sql-database.ts';
import { SqliteAuditStore } from './sqlite-audit-store.ts';
import { SqliteKeyStore } from './sqlite-key-store.ts';

/** Everything `verifyAuditLog` needs from a keyway database: its records, its checkpoints, and the public keys that signed them. */
export async function sqliteAuditLogSource(db: SqlDatabase): Promise<AuditLogSource> {
  const store = new SqliteAuditStore(db);
  const checkpoints: Checkpoint[] = [];
  for (let page = await store.checkpoints(0, 500); page.length > 0; page = await store.checkpoints(page.at(-1)?.seq ?? 0, 500)) checkpoints.push(...page);
  // Every key the broker ever held verifies its checkpoints, retired and removed ones included; public parts only.
  const keys = createLocalJWKSet({ keys: (await new SqliteKeyStore(db).describeKeys()).map((key) => key.publicJwk) });
  return { records: allRecords(store, { order: 'asc', limit: 500 }), checkpoints, keys };
}
