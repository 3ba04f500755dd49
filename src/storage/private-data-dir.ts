import { chmodSync, closeSync, fchmodSync, lstatSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/settings/read-settings.ts';

/** Owner only, whatever the umask: the data dir holds the master key, the signing keys and the audit log. */
const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;
const GROUP_OR_OTHERS = 0o077;

const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

/**
 * Makes `dataDir` the broker's alone, or refuses it. One that does not exist yet is created
 * 0700 (exactly: the umask only ever takes bits away, so it is set again after). One that
 * exists must belong to this user and be closed to its group and others: if it is not, someone
 * chose that, what is in it may have been read already, and that is the operator's to judge,
 * so it is refused with what to run, never opened up or quietly tightened. Files in it that
 * group or others could read (an earlier keyway created its SQLite file under the umask; the
 * owner-only directory kept it private) are set to 0600; their names are returned for the log.
 */
export function preparePrivateDataDir(dataDir: string): string[] {
  const created = mkdirSync(dataDir, { recursive: true, mode: DIRECTORY_MODE }) !== undefined;
  // POSIX modes are not how Windows guards files.
  if (process.platform === 'win32') return [];
  if (created) {
    chmodSync(dataDir, DIRECTORY_MODE);
    return [];
  }
  const { mode, uid } = statSync(dataDir);
  const me = process.getuid?.();
  const fresh = `or set KEYWAY_DATA_DIR to a directory that does not exist yet: keyway creates it owner-only (${octal(DIRECTORY_MODE)})`;
  if (me !== undefined && uid !== me) {
    throw new ConfigError(
      `the data directory ${dataDir} belongs to uid ${uid}, not to the user keyway runs as (uid ${me}), ` +
        `who alone may hold the master key and signing keys: chown it, ${fresh}`,
    );
  }
  if ((mode & GROUP_OR_OTHERS) !== 0) {
    throw new ConfigError(
      `the data directory ${dataDir} is open to its group or others (mode ${octal(mode)}), and it holds the master key and signing keys: ` +
        `run \`chmod 700 ${dataDir}\` if nobody else should have had access ` +
        `(if someone may have read it, change the master key and rotate the signing keys), ${fresh}`,
    );
  }
  // Regular files only: a symlink's target is not the data dir's to change.
  return readdirSync(dataDir).filter((name) => lstatSync(join(dataDir, name)).isFile() && tightenPrivateFile(join(dataDir, name)));
}

/**
 * Creates `path` empty and 0600 (exactly, whatever the umask) unless it exists. SQLite, which
 * would create a database 0644, accepts the empty file, and creates its -wal and -shm files
 * later with the mode of the database file.
 */
export function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  try {
    fchmodSync(fd, FILE_MODE);
  } finally {
    closeSync(fd);
  }
}

/** Sets an existing file to 0600 when its group or others could read it; true when it did. */
export function tightenPrivateFile(path: string): boolean {
  if (process.platform === 'win32' || (statSync(path).mode & GROUP_OR_OTHERS) === 0) return false;
  chmodSync(path, FILE_MODE);
  return true;
}
