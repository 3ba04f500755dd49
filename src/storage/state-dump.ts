import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import type { RecordMacs, RecordsWithoutMac } from '../core/audit/record-mac.ts';
import { newestValidCheckpoint } from '../core/audit/verify-checkpoint.ts';
import * as v from 'valibot';
import type { AuditEvent, AuditRecord } from '../core/audit/audit-event.ts';
import { runGrantsOf } from '../core/audit/run-grants.ts';
import { verifyAuditLog, type AuditLogSource } from '../core/audit/verify-chain.ts';
import { KeywayError } from '../core/errors/keyway-error.ts';
import { errorText } from '../core/log.ts';
import { KeyRing } from '../core/mint/key-ring.ts';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import { checkSchema, SCHEMA_VERSION } from './migrate.ts';
import type { SqlDatabase, SqlValue } from './sql-database.ts';
import { indexRunGrants, toCheckpoint, toRecord, type CheckpointRow, type RecordRow } from './sqlite-audit-store.ts';
import { AUDIT_USAGE_REBUILD } from './sqlite-audit-usage.ts';
import { openSigningKeys, vouchKeys, type KeyRow } from './sqlite-key-store.ts';
import { checkLivePolicyRow, type LivePolicyRow } from './sqlite-live-policy-store.ts';

/**
 * Every row of every keyway table of a database, at one schema version: what a Workers deployment
 * exports (`GET /v1/backup`) and a fresh one restores. Private signing keys and GitHub tokens
 * awaiting revocation stay sealed as stored; the master key is never in it.
 */
export interface StateDump {
  readonly format: typeof STATE_DUMP_FORMAT;
  readonly schema_version: number;
  readonly exported_at: number;
  readonly tables: Readonly<Record<string, readonly Readonly<Record<string, SqlValue>>[]>>;
}

export const STATE_DUMP_FORMAT = 'keyway-state-dump';

/** Why a dump is not restored. Nothing is written when one is thrown. */
export type StateRestoreProblem =
  | 'malformed'
  | 'schema_too_new'
  | 'schema_mismatch'
  | 'not_fresh'
  | 'audit_log_invalid'
  | 'keys_do_not_open'
  | 'live_policy_set_unvouched';

export class StateRestoreError extends KeywayError {
  override readonly name = 'StateRestoreError';
  readonly code = 'state_restore_refused';
  readonly problem: StateRestoreProblem;

  constructor(problem: StateRestoreProblem, message: string) {
    super(message);
    this.problem = problem;
  }
}

const Dump = v.strictObject({
  format: v.literal(STATE_DUMP_FORMAT),
  schema_version: v.pipe(v.number(), v.integer(), v.minValue(1)),
  exported_at: v.pipe(v.number(), v.integer()),
  tables: v.record(v.string(), v.array(v.record(v.string(), v.nullable(v.union([v.string(), v.pipe(v.number(), v.finite())]))))),
});

/** The keyway tables: all but SQLite's own, the Durable Object's (`_cf_…`) and keyway_schema (the dump carries the version). */
function keywayTables(db: SqlDatabase): string[] {
  return db
    .all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .map((row) => row.name)
    .filter((name) => !name.startsWith('sqlite_') && !name.startsWith('_cf_') && name !== 'keyway_schema');
}

function columnsOf(db: SqlDatabase, table: string): string[] {
  return db.all<{ name: string }>('SELECT name FROM pragma_table_info(?) ORDER BY cid', [table]).map((row) => row.name);
}

/** The columns of `table` declared TEXT: SQLite stores a number written there as its text, so an export holds none but text or null. */
function textColumnsOf(db: SqlDatabase, table: string): Set<string> {
  return new Set(db.all<{ name: string }>("SELECT name FROM pragma_table_info(?) WHERE upper(type) = 'TEXT'", [table]).map((row) => row.name));
}

const quoted = (identifier: string): string => `"${identifier.replaceAll('"', '""')}"`;

/** Reads every keyway table in one transaction: one consistent state. */
export function dumpDatabase(db: SqlDatabase, now: number): StateDump {
  return db.transaction(() => ({
    format: STATE_DUMP_FORMAT,
    schema_version: checkSchema(db),
    exported_at: now,
    tables: Object.fromEntries(keywayTables(db).map((table) => [table, db.all(`SELECT * FROM ${quoted(table)}`)])),
  }));
}

/** A dump from its JSON text; StateRestoreError (malformed) when it is not one. */
export function parseStateDump(text: string): StateDump {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StateRestoreError('malformed', 'the export is not JSON');
  }
  return stateDumpOf(json);
}

/** A dump from its parsed JSON; StateRestoreError (malformed) when it is not one. */
export function stateDumpOf(json: unknown): StateDump {
  const parsed = v.safeParse(Dump, json);
  if (!parsed.success) throw new StateRestoreError('malformed', `the export is not a keyway state dump: ${parsed.issues[0].message}`);
  return parsed.output as StateDump;
}

/** What a restore wrote. */
export interface RestoredState {
  readonly schema_version: number;
  readonly records: number;
  readonly head_seq?: number;
  readonly checkpoints: number;
  readonly signing_keys: number;
  /** Its records after the newest checkpoint without a MAC, which passed as written before keyway made MACs: nothing vouches for them. */
  readonly records_without_mac?: readonly RecordsWithoutMac[];
}

/**
 * Restores `dump` into `db`, which must be fresh: no row in any keyway table but signing_keys (a
 * fresh deployment generates a key it has not used yet: it signed nothing, as no record exists).
 * Before anything is written: the dump has this database's schema version (a newer one is refused),
 * names exactly its tables and columns, its audit chain and signed checkpoints verify, the records after its newest
 * checkpoint carry the MACs of this deployment's master key (options.macs), every
 * sealed signing key opens with `box` into a ring with a current key, and `box` attested its live
 * policy set. Then, in one transaction, the fresh keys (and where its migration found the log) go and every row of the dump is written,
 * the tables derived from the records made again from them (deriveFromRecords): all of it or nothing; with `write: false` that transaction is rolled back, so a row its table cannot
 * hold is refused (malformed) by the check too.
 */
export async function restoreDump(
  db: SqlDatabase,
  dump: StateDump,
  box: SecretBox,
  options: {
    /** The signing keys that vouch for its checkpoints when the dump holds none of its own: an audit shard's are its deployment's. */
    readonly signingKeys?: readonly Readonly<Record<string, SqlValue>>[];
    /** False: check everything, write nothing (a restore over several objects checks them all first). */
    readonly write?: boolean;
    /** The chain its audit log is in a sharded log (a shard's index, or `legacy`): its checkpoints must not name another. */
    readonly chain: string;
    /** The record MAC keys of this deployment's master key: the records after the export's newest checkpoint must carry their MACs. */
    readonly macs: RecordMacs | undefined;
  },
): Promise<RestoredState> {
  const version = checkSchema(db);
  if (dump.schema_version > SCHEMA_VERSION) {
    throw new StateRestoreError('schema_too_new', `the export has schema version ${dump.schema_version}, newer than the ${SCHEMA_VERSION} this keyway knows`);
  }
  if (dump.schema_version !== version) {
    throw new StateRestoreError(
      'schema_mismatch',
      `the export has schema version ${dump.schema_version}, this deployment ${version}: restore it into a deployment of the release that exported it`,
    );
  }
  const tables = keywayTables(db);
  const layout = new Map(tables.map((table) => [table, columnsOf(db, table)]));
  checkLayout(dump, layout);
  const keyRows = (options.signingKeys as KeyRow[] | undefined) ?? rowsOf<KeyRow>(dump, 'signing_keys');
  // The keys another object's export gave (a shard's are its deployment's) are read as text as this export's own would be.
  checkTextColumns({ ...dump.tables, signing_keys: keyRows }, new Map(tables.map((table) => [table, textColumnsOf(db, table)])));
  checkFresh(db, tables);
  if (keyRows.some((row) => !isJson(row.public_jwk)))
    throw new StateRestoreError('malformed', 'a signing key in the export has a public part that is not JSON');
  let trusted: Awaited<ReturnType<typeof vouchKeys>>;
  try {
    await KeyRing.from((await openSigningKeys(keyRows, box)).map((opened) => opened.key));
    // Checkpoints count only when signed by a key this master key attests: a key planted in the export vouches for nothing.
    trusted = await vouchKeys(keyRows, box);
  } catch (error) {
    if (!(error instanceof KeywayError)) throw error;
    throw new StateRestoreError('keys_do_not_open', `the signing keys in the export do not open with this deployment's master key: ${error.message}`);
  }
  // The live policy set is served as restored: one the master key did not attest could allow anything.
  for (const row of rowsOf<LivePolicyRow>(dump, 'live_policy_set')) {
    const check = await checkLivePolicyRow(row, box);
    if (!check.ok) throw new StateRestoreError('live_policy_set_unvouched', `the export's ${check.why}`);
  }
  const keys = createLocalJWKSet({ keys: trusted.vouched.map((key) => key.publicJwk) });
  const report = await verifyAuditLog({ ...dumpAuditLogSource(dump, { keys, unvouched: trusted.unvouched }), chain: options.chain });
  if (!report.ok) {
    const problem = report.problem;
    throw new StateRestoreError(
      'audit_log_invalid',
      `the audit log in the export does not verify (${problem?.kind} at seq ${problem?.seq}): ${problem?.message}`,
    );
  }
  const withoutMac = await checkRecordMacs(dump, keys, options.macs, options.chain);
  writeDump(db, dump, layout, tables, options.write !== false);
  return {
    schema_version: version,
    records: report.records,
    ...(report.last_seq === undefined ? {} : { head_seq: report.last_seq }),
    checkpoints: report.checkpoints,
    signing_keys: rowsOf(dump, 'signing_keys').length,
    ...(withoutMac === undefined ? {} : { records_without_mac: [withoutMac] }),
  };
}

/**
 * The records after the export's newest checkpoint are vouched for by their MACs alone: one the broker did not append
 * (written into the export after it was taken) would be signed as the broker's by the restored deployment's next upkeep.
 * Those without a MAC that pass, as written before keyway made MACs, are vouched for by nothing: returned, to be reported.
 */
async function checkRecordMacs(dump: StateDump, keys: JWTVerifyGetKey, macs: RecordMacs | undefined, chain: string): Promise<RecordsWithoutMac | undefined> {
  const records = rowsOf<RecordRow & { mac: string | null }>(dump, 'audit_events');
  const newest = await newestValidCheckpoint(rowsOf<CheckpointRow>(dump, 'audit_checkpoints').map(toCheckpoint), keys, chain);
  const tail = records.filter((row) => row.seq > (newest?.seq ?? 0)).sort((a, b) => a.seq - b.seq);
  if (tail.length === 0) return undefined;
  if (macs === undefined) throw new StateRestoreError('audit_log_invalid', "no master key to check the audit records' MACs with");
  const check = macs.inOrder(newest?.macsAfter ?? macsStart(dump));
  const unmaced: number[] = [];
  for (const row of tail) {
    const problem = check.problem({ seq: row.seq, hash: row.hash ?? '' }, row.mac);
    if (problem !== undefined) throw new StateRestoreError('audit_log_invalid', `audit record ${row.seq} in the export ${problem.why}`);
    if (row.mac === null) unmaced.push(row.seq);
  }
  const [first, last] = [unmaced[0], unmaced.at(-1)];
  return first === undefined || last === undefined ? undefined : { chain, first_seq: first, last_seq: last };
}

/**
 * Writes every row in one transaction, kept only if `keep`: otherwise rolled back, so a check finds a row its table
 * cannot hold (a key given twice, a value a constraint refuses) before any object of a sharded restore is written.
 */
function writeDump(db: SqlDatabase, dump: StateDump, layout: ReadonlyMap<string, readonly string[]>, tables: readonly string[], keep: boolean): void {
  try {
    db.transaction(() => {
      // Checked again where nothing can interleave: an exchange may have been recorded while the export was verified.
      checkFresh(db, tables);
      for (const table of REPLACED) db.run(`DELETE FROM ${quoted(table)}`);
      for (const [table, columns] of layout) {
        const insert = `INSERT INTO ${quoted(table)} (${columns.map(quoted).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`;
        for (const [index, row] of (dump.tables[table] ?? []).entries()) {
          try {
            db.run(
              insert,
              columns.map((column) => row[column] ?? null),
            );
          } catch (error) {
            throw new StateRestoreError('malformed', `row ${index} of ${table} in the export cannot be written: ${errorText(error)}`);
          }
        }
      }
      deriveFromRecords(db);
      if (!keep) throw CHECKED;
    });
  } catch (error) {
    if (error !== CHECKED) throw error;
  }
}

/**
 * The tables the append path derives from the records, made again from the records just written, not taken from the
 * export: nothing vouches for an export's rows of them, and the chain verifies whatever they hold. Whoever could edit
 * the export would otherwise choose which tokens a job's end revokes (audit_run_grants: a row deleted leaves a running
 * job's token live past its end, one planted revokes another's) and what the inventory and least-privilege analysis
 * count (the usage roll-up). The run grants are indexed as the append indexes them, record by record in seq order; the
 * roll-up is emptied as a migration that changes what it counts empties it, and caught up from the records by the next
 * read or alarm. Neither outlives its records: a grant's row goes when its token expires (a day at most, the least
 * retention), the roll-up's days when pruning takes theirs (dropPrunedUsage).
 */
function deriveFromRecords(db: SqlDatabase): void {
  db.run('DELETE FROM audit_run_grants');
  // A page at a time: an object's export may hold 24 MiB of records, which parsed at once would crowd a Worker isolate.
  for (let after = 0; ; ) {
    const rows = db.all<{ seq: number; event: string }>('SELECT seq, event FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?', [after, DERIVE_PAGE]);
    const last = rows.at(-1);
    if (last === undefined) break;
    indexRunGrants(
      db,
      rows.map((row) => {
        const event = JSON.parse(row.event) as AuditEvent;
        return { index: { time: Date.parse(event.time) }, runGrants: runGrantsOf(event) };
      }),
    );
    after = last.seq;
  }
  db.exec(AUDIT_USAGE_REBUILD);
}

/** Records read at once by deriveFromRecords. */
const DERIVE_PAGE = 1000;

/** The tables a fresh database holds rows in, which the export's replace. */
const REPLACED = ['signing_keys', 'audit_mac_start'];

/** Thrown to roll back a write made only to check it. */
const CHECKED = Symbol('written only to check');

/** The dump names exactly the database's tables, each row exactly its columns: nothing unknown is written, nothing is left out. */
function checkLayout(dump: StateDump, layout: ReadonlyMap<string, readonly string[]>): void {
  const names = Object.keys(dump.tables);
  const unknown = names.filter((name) => !layout.has(name));
  const missing = [...layout.keys()].filter((name) => !names.includes(name));
  if (unknown.length > 0 || missing.length > 0) {
    throw new StateRestoreError(
      'malformed',
      `the export's tables are not this schema's (unknown: ${unknown.join(', ') || '-'}; missing: ${missing.join(', ') || '-'})`,
    );
  }
  for (const [table, columns] of layout) {
    const expected = [...columns].sort().join();
    const bad = (dump.tables[table] ?? []).findIndex((row) => Object.keys(row).sort().join() !== expected);
    if (bad >= 0) throw new StateRestoreError('malformed', `row ${bad} of ${table} in the export does not have the columns ${columns.join(', ')}`);
  }
}

/**
 * A number in a TEXT column is an edited export (the database it came from held text there): refused before the checks
 * that read those columns as text (a sealed key, an attestation, a record) meet it.
 */
function checkTextColumns(rows: StateDump['tables'], text: ReadonlyMap<string, ReadonlySet<string>>): void {
  for (const [table, columns] of text) {
    for (const [index, row] of (rows[table] ?? []).entries()) {
      const column = [...columns].find((name) => typeof row[name] === 'number');
      if (column !== undefined) throw new StateRestoreError('malformed', `row ${index} of ${table} in the export has a number in ${column}, a text column`);
    }
  }
}

/**
 * The tables that hold rows: a database is fresh when none but signing_keys (a fresh deployment's unused key) and
 * audit_mac_start (where its migration found the log, empty) does.
 */
export function usedTables(db: SqlDatabase, tables: readonly string[] = keywayTables(db)): string[] {
  return tables.filter((table) => !REPLACED.includes(table) && db.all(`SELECT 1 AS one FROM ${quoted(table)} LIMIT 1`).length > 0);
}

export const notFresh = (used: readonly string[]): StateRestoreError =>
  new StateRestoreError(
    'not_fresh',
    `this deployment is not fresh (${used.join(', ')} hold rows): an export is restored only into a deployment that has served nothing yet`,
  );

function checkFresh(db: SqlDatabase, tables: readonly string[]): void {
  const used = usedTables(db, tables);
  if (used.length > 0) throw notFresh(used);
}

function rowsOf<Row>(dump: StateDump, table: string): Row[] {
  return (dump.tables[table] ?? []) as unknown as Row[];
}

/** Where MACs start as the dump's store remembered it (audit_mac_start), as SqliteAuditStore.macsStart reads a database's. */
function macsStart(dump: StateDump): number {
  return rowsOf<{ macs_after: number }>(dump, 'audit_mac_start')[0]?.macs_after ?? 0;
}

/** The dump's audit log and checkpoints, with the keys trusted to have signed them, as `verifyAuditLog` reads a database's. */
export function dumpAuditLogSource(dump: StateDump, trusted: Pick<AuditLogSource, 'keys' | 'unvouched'>): AuditLogSource {
  const bySeq = <Row extends { seq: number }>(rows: Row[]): Row[] => [...rows].sort((a, b) => a.seq - b.seq);
  const records = bySeq(rowsOf<RecordRow>(dump, 'audit_events'));
  return {
    records: (async function* (): AsyncGenerator<AuditRecord> {
      for (const row of records) {
        try {
          yield toRecord(row);
        } catch {
          throw new StateRestoreError('audit_log_invalid', `audit record ${row.seq} in the export is not a stored event`);
        }
      }
    })(),
    checkpoints: bySeq(rowsOf<CheckpointRow>(dump, 'audit_checkpoints')).map(toCheckpoint),
    macsStart: macsStart(dump),
    ...trusted,
  };
}

function isJson(text: unknown): boolean {
  try {
    JSON.parse(String(text));
    return true;
  } catch {
    return false;
  }
}
