import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { nodeConfigFromEnv } from '../config/node-config.ts';
import { KeywayError } from '../core/errors/keyway-error.ts';
import { MASTER_KEY_FILE } from '../storage/master-key-file.ts';
import { checkSchema } from '../storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile, type SqliteFile } from '../storage/sqlite-file.ts';
import { CliError, type Command } from './command.ts';
import { openCommandDataDir } from './existing-data-dir.ts';
import { checkSnapshot, describeSnapshot, openSnapshot } from './database-snapshot.ts';
import { OutputRefused, writeNewPrivateFile } from './new-private-file.ts';

const USAGE = `usage: keyway backup --output FILE [--data-dir DIR] [--json]

Copies a Node broker's database (${DATABASE_FILE}: the audit log and its checkpoints, the sealed
signing keys, single-use claims, the GitHub revocation schedule, the live policy set) into FILE
through SQLite's online backup API: one consistent state, taken while the broker serves, which
it does not pause. The master key is never in it, even when ${MASTER_KEY_FILE} is in the data directory:
keep it in a secret store, apart from the backups. FILE is written 0600 through a 0700
staging directory beside it, so it is whole or absent, and an existing FILE is never overwritten.
The snapshot is then checked (SQLite integrity, the schema exactly as keyway's migrations make it, the audit
chain and its signed checkpoints against the keys stored in the copy: that the copy is whole;
which keys to trust is keyway restore's and keyway audit verify's to decide) and what it holds is
printed. Exit code 0: written and verified; 1: an error (nothing written), or a snapshot with
schema objects keyway does not make or an audit log that does not verify (kept: it is what the
data directory holds).

  --output FILE             where to write the backup (must not exist)
  --data-dir DIR            the broker's data directory (default KEYWAY_DATA_DIR or .keyway)
  --json                    machine-readable output: {"output", "schema_version", "records", "head_seq", …}`;

export const backup: Command = {
  summary: 'snapshot a Node broker’s database while it serves (never the master key)',
  usage: USAGE,
  async run(args) {
    const options = { 'data-dir': { type: 'string' }, output: { type: 'string' }, json: { type: 'boolean', default: false } } as const;
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    if (values.output === undefined) throw new CliError('--output FILE is required: where to write the backup');
    const output = resolve(values.output);
    const source = await openDataDir(values['data-dir'] ?? nodeConfigFromEnv(process.env).dataDir);
    try {
      if (existsSync(output)) throw new CliError(`${output} exists: keyway backup never overwrites a file`, 1);
      await writeNewPrivateFile(output, (partial) => source.backup(partial));
    } catch (error) {
      if (error instanceof KeywayError && !(error instanceof OutputRefused)) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      throw new CliError(
        code === 'EEXIST' ? `${output} exists: keyway backup never overwrites a file` : `cannot write the backup to ${output}: ${(error as Error).message}`,
        1,
      );
    } finally {
      source.close();
    }
    const snapshot = openSnapshot(output, output, { readonly: true });
    try {
      // A check that the copy is whole, needing no secret: which keys to trust is for restore and audit verify to decide.
      const { summary, report } = await checkSnapshot(snapshot, output, 'stored');
      if (values.json === true) process.stdout.write(`${JSON.stringify({ output, ...summary, verified: report.ok })}\n`);
      else process.stdout.write(`backup written to ${output}: ${describeSnapshot(summary)}\n`);
      if (report.ok) return 0;
      process.stderr.write(
        `keyway: the audit log in the backup does not verify (${report.problem?.kind} at seq ${report.problem?.seq}): ${report.problem?.message}\n`,
      );
      return 1;
    } finally {
      snapshot.close();
    }
  },
};

/** The data directory's database, opened for reading; refused unless it is a keyway database this code knows. */
/** The data directory's database, read-only, from a directory held to what the broker holds its own to (openInExistingDataDir). */
async function openDataDir(dataDir: string): Promise<SqliteFile> {
  if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) throw new CliError(`no data directory at ${dataDir}`, 1);
  if (!existsSync(join(dataDir, DATABASE_FILE))) throw new CliError(`${dataDir} is not a keyway data directory: it has no ${DATABASE_FILE}`, 1);
  return openCommandDataDir(
    'back up',
    dataDir,
    (checked) => {
      const path = join(checked, DATABASE_FILE);
      let db: SqliteFile | undefined;
      try {
        db = openSqliteFile(path, { readonly: true });
        if (checkSchema(db) === 0) throw new CliError(`${path} is not a keyway database: it has no keyway_schema table`, 1);
        return db;
      } catch (error) {
        db?.close();
        if (error instanceof KeywayError) throw error;
        throw new CliError(`cannot read ${path}: ${(error as Error).message}`, 1);
      }
    },
    { undo: (db) => db.close(), reading: true },
  );
}
