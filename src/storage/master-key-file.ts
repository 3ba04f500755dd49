import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { generateMasterKey, parseMasterKey, readMasterKeys, type MasterKeys } from '../core/secrets/master-keys.ts';
import type { SettingsSource } from '../core/settings/read-settings.ts';
import { tightenPrivateFile } from './private-data-dir.ts';

export const MASTER_KEY_FILE = 'master.key';

/**
 * The master key from `KEYWAY_MASTER_KEY`; without it (the embedded default), one generated on
 * first start and kept in the data dir, readable by its owner only. That still keeps secrets
 * out of the database file and its backups, but not from whoever reads the data dir: production
 * sets the variable from a secret store.
 */
export function loadNodeMasterKeys(env: SettingsSource, dataDir: string, log: Logger): MasterKeys {
  const configured = readMasterKeys(env);
  if (configured !== undefined) return configured;
  const path = join(dataDir, MASTER_KEY_FILE);
  try {
    writeFileSync(path, `${generateMasterKey()}\n`, { flag: 'wx', mode: 0o600 });
    log.warn('master key generated', {
      path,
      advice: 'set KEYWAY_MASTER_KEY from a secret store in production; secrets at rest are only as safe as this file',
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  tightenPrivateFile(path);
  return readMasterKeyFile(path);
}

/** A master key kept in a file, as `master.key` holds it (e.g. one fetched from a secret store for `keyway restore`). */
export function readMasterKeyFile(path: string): MasterKeys {
  return { current: parseMasterKey(readFileSync(path, 'utf8'), path), previous: [] };
}
