import { verifyAuditLog, type ChainReport } from '../core/audit/verify-chain.ts';
import { KeywayError } from '../core/errors/keyway-error.ts';
import { KeyRing } from '../core/mint/key-ring.ts';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import { foreignSchemaObjects } from '../storage/foreign-schema-objects.ts';
import { checkSchema } from '../storage/migrate.ts';
import { type CheckpointKeys, sqliteAuditLogSource } from '../storage/sqlite-audit-log-source.ts';
import { openSqliteFile, type SqliteFile } from '../storage/sqlite-file.ts';
import { SqliteKeyStore } from '../storage/sqlite-key-store.ts';
import { CliError } from './command.ts';

/** What a backup holds, as `keyway backup` and `keyway restore` report it. */
export interface SnapshotSummary {
  readonly schema_version: number;
  readonly records: number;
  readonly first_seq?: number;
  readonly head_seq?: number;
  readonly head_hash?: string;
  readonly checkpoints: number;
  readonly signing_keys: number;
}

/** Opens `path` (a copy of `what`), or throws CliError (exit 1): a file SQLite cannot read is not a database to restore. */
export function openSnapshot(path: string, what: string, options: { readonly?: boolean } = {}): SqliteFile {
  try {
    return openSqliteFile(path, options);
  } catch (error) {
    throw new CliError(`${what} is not a readable SQLite database: ${(error as Error).message}`, 1);
  }
}

/**
 * Checks that `db` is a whole keyway database this code understands: SQLite's integrity check
 * (a truncated or damaged file fails it), a schema no newer than the code and exactly as its
 * migrations made it (no trigger, view or altered table). Returns its schema version; throws
 * CliError (exit 1) naming what fails, with `what` (the file).
 */
export function checkDatabase(db: SqliteFile, what: string): number {
  let version: number;
  try {
    const integrity = db.all<{ integrity_check: string }>('PRAGMA integrity_check').map((row) => row.integrity_check);
    if (integrity.join() !== 'ok') throw new CliError(`${what} is damaged (SQLite integrity check: ${integrity.slice(0, 3).join('; ')})`, 1);
    version = checkSchema(db);
  } catch (error) {
    if (error instanceof KeywayError) throw error;
    throw new CliError(`${what} is not a readable SQLite database: ${(error as Error).message}`, 1);
  }
  if (version === 0) throw new CliError(`${what} is a SQLite database but not a keyway one: it has no keyway_schema table`, 1);
  checkSchemaObjects(db, version, what);
  return version;
}

/** Refuses (CliError, exit 1) a `db` whose schema objects are not exactly those keyway's migrations make up to `version`. */
export function checkSchemaObjects(db: SqliteFile, version: number, what: string): void {
  const foreign = foreignSchemaObjects(db, version);
  if (foreign.length > 0) {
    throw new CliError(
      `${what} holds schema objects keyway does not make: ${foreign.join(', ')}. A trigger or view would run inside the broker, ` +
        'a changed table or index would drop a check it relies on: whoever wrote them could write the database',
      1,
    );
  }
}

/** `checkDatabase`, then `verifySnapshot`: what the file holds and whether its audit log verifies. */
export async function checkSnapshot(db: SqliteFile, what: string, keys: CheckpointKeys): Promise<{ summary: SnapshotSummary; report: ChainReport }> {
  return verifySnapshot(db, checkDatabase(db, what), keys);
}

/** The audit chain and the checkpoints signed by `keys` (see CheckpointKeys) of `db`, already checked at schema `version`: what it holds and whether it verifies. */
export async function verifySnapshot(db: SqliteFile, version: number, keys: CheckpointKeys): Promise<{ summary: SnapshotSummary; report: ChainReport }> {
  const report = await verifyAuditLog(await sqliteAuditLogSource(db, keys));
  const signingKeys = await new SqliteKeyStore(db).describeKeys();
  return {
    report,
    summary: {
      schema_version: version,
      records: report.records,
      ...(report.first_seq === undefined ? {} : { first_seq: report.first_seq }),
      ...(report.last_seq === undefined ? {} : { head_seq: report.last_seq }),
      ...(report.head_hash === undefined ? {} : { head_hash: report.head_hash }),
      checkpoints: report.checkpoints,
      signing_keys: signingKeys.length,
    },
  };
}

/** Opens every sealed signing key with `box` (the master key's), as the broker will at start; throws CliError (exit 1) if one does not open. */
export async function checkKeyRingOpens(db: SqliteFile, box: SecretBox, what: string): Promise<void> {
  try {
    await KeyRing.from(await new SqliteKeyStore(db, box).listKeys());
  } catch (error) {
    if (!(error instanceof KeywayError)) throw error;
    throw new CliError(`the signing keys in ${what} do not open with the master key given (is it the broker's?): ${error.message}`, 1);
  }
}

export function describeSnapshot(summary: SnapshotSummary): string {
  const range = summary.records === 0 ? 'no audit records' : `${summary.records} audit records (seq ${summary.first_seq}…${summary.head_seq})`;
  return (
    `schema version ${summary.schema_version}, ${range}, ${summary.checkpoints} signed checkpoints, ${summary.signing_keys} signing keys` +
    `${summary.head_hash === undefined ? '' : `; head ${summary.head_hash}`}`
  );
}
