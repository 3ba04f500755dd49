import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../log.ts';
import { nodeConfigFromEnv, type NodeBrokerConfig } from '../node/config.ts';
import { loadNodeMasterKeys, MASTER_KEY_FILE } from '../node/master-key-file.ts';
import { DATABASE_FILE, openSqliteFile, type SqliteFile } from '../node/sqlite-file.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import { migrate } from '../storage/migrate.ts';
import { SqliteKeyStore } from '../storage/sqlite-key-store.ts';
import { CliError } from './command.ts';

export const KEYS_SOURCE_USAGE = `  --data-dir DIR            the broker's data directory (default KEYWAY_DATA_DIR or .keyway)
  --json                    machine-readable output`;

export interface KeyStoreFile {
  readonly store: SqliteKeyStore;
  readonly config: NodeBrokerConfig;
  readonly json: boolean;
  close(): void;
}

/**
 * The key store in a Node broker's data directory, opened beside a running broker (SQLite
 * serialises the writes). `sealed`: with the master key, to store new keys — from
 * KEYWAY_MASTER_KEY or the data dir's master key file, never a new one made up here.
 */
export async function openKeyStoreFile(args: readonly string[], access: { sealed: boolean }): Promise<KeyStoreFile> {
  const { values } = parseArgs({ args: [...args], options: { 'data-dir': { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true, allowPositionals: false });
  const config = nodeConfigFromEnv(values['data-dir'] === undefined ? process.env : { ...process.env, KEYWAY_DATA_DIR: values['data-dir'] });
  const path = join(config.dataDir, DATABASE_FILE);
  if (!existsSync(path)) throw new CliError(`no broker database at ${path}: start the broker once (npm start) or pass --data-dir`, 1);
  let box: SecretBox | undefined;
  if (access.sealed) {
    if (config.masterKeys === undefined && !existsSync(join(config.dataDir, MASTER_KEY_FILE))) {
      throw new CliError(`no master key: set KEYWAY_MASTER_KEY as the broker has it (there is no ${MASTER_KEY_FILE} in ${config.dataDir})`, 1);
    }
    box = await SecretBox.fromMasterKeys(config.masterKeys ?? loadNodeMasterKeys({}, config.dataDir, silentLogger));
  }
  let db: SqliteFile;
  try {
    db = openSqliteFile(path, { readonly: !access.sealed });
    if (access.sealed) migrate(db);
  } catch (error) {
    throw new CliError(`cannot open the key store at ${path}: ${(error as Error).message}`, 1);
  }
  return { store: new SqliteKeyStore(db, box), config, json: values.json === true, close: () => db.close() };
}

export const isoTime = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
