import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, linkSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { KeywayError } from '../core/errors/keyway-error.ts';
import { readMasterKeys, type MasterKeys } from '../core/secrets/master-keys.ts';
import { SecretBox } from '../core/secrets/secret-box.ts';
import { MASTER_KEY_FILE } from '../storage/master-key-file.ts';
import { LIVE_POLICY_ATTESTATION_SCHEMA, migrate, SCHEMA_VERSION } from '../storage/migrate.ts';
import { checkDataDir, createPrivateFile, preparePrivateDataDir } from '../storage/private-data-dir.ts';
import { DATABASE_FILE, type SqliteFile } from '../storage/sqlite-file.ts';
import { SqliteLivePolicyStore } from '../storage/sqlite-live-policy-store.ts';
import { CliError, type Command } from './command.ts';
import { ChainConflictError } from '../core/audit/chain-conflict-error.ts';
import { RecordMacs, recordMacKeys } from '../core/audit/record-mac.ts';
import { newestValidCheckpoint } from '../core/audit/verify-checkpoint.ts';
import { sqliteAuditLogSource, type CheckpointKeys } from '../storage/sqlite-audit-log-source.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { readPinnedKeys } from './pinned-keys.ts';
import { masterKeyFileOption } from './master-key-option.ts';
import { checkDatabase, checkKeyRingOpens, checkSchemaObjects, describeSnapshot, openSnapshot, verifySnapshot } from './database-snapshot.ts';

const USAGE = `usage: keyway restore --backup FILE --data-dir DIR [--master-key-file FILE] [--keys FILE] [--json]

Restores a backup written by \`keyway backup\` into DIR, a new data directory for a broker. It
never overwrites a database: DIR must not hold ${DATABASE_FILE} (a running broker's directory always
does, and so does an old one), so restore into a new directory, then point KEYWAY_DATA_DIR at it.
Before anything takes the name ${DATABASE_FILE} it checks, on a temporary copy in DIR, that the backup
is an undamaged keyway database whose schema is no newer than this keyway (an older one is
migrated) and exactly what its migrations make (no trigger, view or changed table), that its
audit chain verifies and its checkpoints are signed by keys the master key attests (or --keys
pins; a key only the file vouches for counts for nothing), that the records after its newest
checkpoint carry the MACs the broker writes them with under that master key, and that every
signing key opens with the master key given. Any failure leaves DIR as it was (removed again if restore created it).
DIR is created owner-only (0700) and ${DATABASE_FILE} 0600, as the broker demands. The master key is not
written into DIR. On success it notes, on standard error, that keyway tokens revoked after the backup
was taken are live again until they expire, and that CI tokens of GitHub Actions jobs that completed since
are taken again until they expire.

  --backup FILE             the backup to restore (it is only read)
  --data-dir DIR            the data directory to create or fill (must not hold ${DATABASE_FILE})
  --master-key-file FILE    the broker's master key, from a file (e.g. the ${MASTER_KEY_FILE} you kept apart);
                            without it, KEYWAY_MASTER_KEY (and KEYWAY_MASTER_KEY_PREVIOUS) as the broker reads them
  --keys FILE               a JWKS saved earlier from GET /v1/audit/keys: these keys count as the broker's
                            too (a key removed before keyway attested keys verifies its checkpoints only so)
  --json                    machine-readable output: {"data_dir", "schema_version", "records", "head_seq", …}`;

/**
 * Revoked keyway tokens and the completed GitHub Actions jobs are single-use claims (by jti, by job), which a backup holds
 * as of its time: whatever was revoked since is live again in the restored broker until it expires, and a finished job's
 * OIDC token is exchanged again until it expires. Nothing in the backup says what that was, so restore says it every time
 * (docs/operations/backup-and-upgrade.md).
 */
const RESTORE_NOTE =
  'note: keyway tokens revoked after this backup was taken (POST /revoke, or when their GitHub Actions job ended) are not revoked in it: ' +
  'each verifies again until its exp, at most KEYWAY_MAX_TTL_SECONDS after it was issued. Have their holders revoke them again, or start ' +
  'the broker only once KEYWAY_MAX_TTL_SECONDS have passed since the old one last served. Nor does it know the GitHub Actions jobs that ' +
  'completed since: their OIDC tokens are exchanged again until they expire, within 10 minutes of being issued; redeliver the ' +
  'workflow_job and workflow_run deliveries that failed meanwhile';

/** What a database in DIR leaves: the file, and SQLite's write-ahead log and shared memory beside it. */
const DATABASE_FILES = [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`];

export const restore: Command = {
  summary: 'restore a backup into a new data directory, verified before it takes the name',
  usage: USAGE,
  async run(args) {
    const options = {
      backup: { type: 'string' },
      'data-dir': { type: 'string' },
      'master-key-file': { type: 'string' },
      keys: { type: 'string' },
      json: { type: 'boolean', default: false },
    } as const;
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    if (values.backup === undefined) throw new CliError('--backup FILE is required: the file `keyway backup` wrote');
    if (values['data-dir'] === undefined) throw new CliError('--data-dir DIR is required: the new data directory to restore into');
    const backupFile = resolve(values.backup);
    const given = resolve(values['data-dir']);
    const masterKeys = masterKeysFrom(values['master-key-file']);
    const pinned = values.keys === undefined ? undefined : readPinnedKeys(values.keys);
    if (!existsSync(backupFile) || !statSync(backupFile).isFile()) throw new CliError(`no backup file at ${backupFile}`, 1);
    const held = DATABASE_FILES.filter((name) => existsSync(join(given, name)));
    if (held.length > 0) {
      throw new CliError(
        `${given} holds ${held.join(', ')} already (a running broker's data directory, or an old one): ` +
          'keyway restore never overwrites a database; restore into a new directory',
        1,
      );
    }
    const created = !existsSync(given);
    // Written, and linked into place, under its real path: the directory checked is the one written, while its path names it.
    const privateDir = preparePrivateDataDir(given);
    const dataDir = privateDir.path;
    const partial = join(dataDir, `.${DATABASE_FILE}.restore-${randomUUID()}`);
    try {
      checkDataDir(privateDir.pin);
      createPrivateFile(partial);
      // Into the 0600 file as it is: copyFile would give it the backup file's mode.
      await pipeline(createReadStream(backupFile), createWriteStream(partial, { flags: 'r+' }));
      const db = openSnapshot(partial, backupFile);
      let summary;
      try {
        const backupSchema = checkDatabase(db, backupFile);
        migrate(db);
        checkSchemaObjects(db, SCHEMA_VERSION, backupFile);
        const box = await SecretBox.fromMasterKeys(masterKeys);
        await checkKeyRingOpens(db, box, backupFile);
        await checkLivePolicySet(db, box, backupSchema, backupFile);
        // Checkpoints count only when signed by a key this master key attests (or --keys pins): a key planted in the backup vouches for nothing.
        const trust = { box, ...(pinned === undefined ? {} : { pinned }) };
        const checked = await verifySnapshot(db, SCHEMA_VERSION, trust);
        if (!checked.report.ok) {
          const { problem } = checked.report;
          throw new CliError(`the audit log in ${backupFile} does not verify (${problem?.kind} at seq ${problem?.seq}): ${problem?.message}`, 1);
        }
        await checkRecordMacs(db, masterKeys, trust, backupSchema, backupFile);
        summary = checked.summary;
      } finally {
        db.close();
      }
      // link, not rename: it fails if a database appeared in DIR meanwhile (a broker started on it), where rename would replace it.
      checkDataDir(privateDir.pin);
      linkSync(partial, join(dataDir, DATABASE_FILE));
      if (values.json === true) process.stdout.write(`${JSON.stringify({ data_dir: dataDir, ...summary })}\n`);
      else process.stdout.write(`restored into ${dataDir}: ${describeSnapshot(summary)}\n`);
      process.stderr.write(`${RESTORE_NOTE}\n`);
      return 0;
    } catch (error) {
      removePartial(partial);
      // A directory restore created goes again, so a failed restore leaves nothing that looks like a data directory.
      if (created && readdirSync(dataDir).length === 0) rmdirSync(dataDir);
      if (error instanceof KeywayError) throw error;
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new CliError(`${join(dataDir, DATABASE_FILE)} appeared during the restore: left as it is`, 1);
      throw new CliError(`cannot restore into ${dataDir}: ${(error as Error).message}`, 1);
    } finally {
      removePartial(partial);
      privateDir.close();
    }
  },
};

/**
 * The restored broker serves the live policy set as restored, so the master key must have attested
 * it; one a backup from before attestations holds is restored but not served until the next push.
 */
async function checkLivePolicySet(db: SqliteFile, box: SecretBox, backupSchema: number, backupFile: string): Promise<void> {
  const check = await new SqliteLivePolicyStore(db).vouched(box);
  if (check === undefined || check.ok) return;
  if (check.unattested && backupSchema < LIVE_POLICY_ATTESTATION_SCHEMA) {
    process.stderr.write(`note: the ${check.why}; the broker will not serve it, the next push to the policy repository replaces it\n`);
    return;
  }
  throw new CliError(`the ${check.why}: whoever could write ${backupFile} without the master key could have planted it. Nothing was restored`, 1);
}

/**
 * The records after the backup's newest checkpoint are vouched for by their MACs alone (record-mac.ts): one written into
 * the backup after it was taken would be signed by the restored broker's first upkeep as its own. Those without a MAC
 * that pass, as written before keyway made MACs (a backup of an older schema, migrated here, or one whose newest
 * checkpoint signed no start), are vouched for by nothing: whoever could write the backup could have appended them (or
 * made a newer backup look older, its MACs and later checkpoints taken out), so the operator is told which they are.
 */
async function checkRecordMacs(db: SqliteFile, masterKeys: MasterKeys, trust: CheckpointKeys, backupSchema: number, backupFile: string): Promise<void> {
  const source = await sqliteAuditLogSource(db, trust);
  const newest = await newestValidCheckpoint(source.checkpoints, source.keys);
  const store = new SqliteAuditStore(db, { macs: new RecordMacs(recordMacKeys(masterKeys)) });
  try {
    await store.recordMacsHold(newest?.seq ?? 0, (await store.head()).seq, newest?.macsAfter);
  } catch (error) {
    if (!(error instanceof ChainConflictError)) throw error;
    throw new CliError(`the audit log in ${backupFile} holds a record the broker did not append: ${error.message}. Nothing was restored`, 1);
  }
  const [unmaced] = db.all<{ first: number | null; last: number | null }>(
    'SELECT min(seq) AS first, max(seq) AS last FROM audit_events WHERE seq > ? AND mac IS NULL',
    [newest?.seq ?? 0],
  );
  if (unmaced?.first != null) {
    process.stderr.write(
      `note: the audit log in ${backupFile} (schema version ${backupSchema}) holds records without a MAC after its last signed checkpoint ` +
        `(seq ${unmaced.first}…${unmaced.last}), taken as written before keyway made MACs: nothing vouches for them, and the restored ` +
        'broker signs them as its own. Whoever could write the backup could have appended them: read them (keyway audit query --data-dir DIR) ' +
        'before a broker starts on it\n',
    );
  }
}

function masterKeysFrom(file: string | undefined): MasterKeys {
  if (file !== undefined) return masterKeyFileOption(file);
  const fromEnv = readMasterKeys(process.env);
  if (fromEnv === undefined) {
    throw new CliError('no master key: set KEYWAY_MASTER_KEY as the broker has it, or give --master-key-file (the signing keys are checked to open with it)');
  }
  return fromEnv;
}

/** The temporary copy and whatever SQLite left beside it. */
function removePartial(partial: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${partial}${suffix}`, { force: true });
}
