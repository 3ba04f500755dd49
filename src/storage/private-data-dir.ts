import {
  type BigIntStats,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../core/settings/read-settings.ts';

/** Owner only, whatever the umask: the data dir holds the master key, the signing keys and the audit log. */
const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;
const GROUP_OR_OTHERS = 0o077;

const GROUP_OR_OTHERS_WRITE = 0o022;
const STICKY = 0o1000;

const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

const OTHERS_WRITE = 0o002;

/**
 * Why someone other than this user and root could change what `real` (a path without symbolic links, realpathSync's)
 * names, or undefined: one of it and its parents belongs to someone else, or others may write to one that is not sticky
 * (in a sticky directory such as /tmp, only an entry's owner may rename or replace it). With `group`, its group writing
 * counts too. What is opened by path later (SQLite, a thread's own connection, a socket) is then the file that was checked.
 */
export function othersCanChange(real: string, { group }: { readonly group: boolean }): string | undefined {
  if (process.platform === 'win32') return undefined;
  const uid = process.getuid?.() ?? 0;
  const writers = group ? GROUP_OR_OTHERS_WRITE : OTHERS_WRITE;
  for (let current = real; ; current = dirname(current)) {
    const { mode, uid: owner } = statSync(current);
    const by =
      owner !== uid && owner !== 0
        ? `its owner (uid ${owner})`
        : (mode & writers) !== 0 && (mode & STICKY) === 0
          ? group
            ? 'its group or others'
            : 'others'
          : undefined;
    if (by !== undefined) return `${current} can be changed by ${by} (mode ${(mode & 0o7777).toString(8)})`;
    if (dirname(current) === current) return undefined;
  }
}

/** The first symbolic link on `path` (the path itself or a parent, as given) that belongs to neither this user nor root. */
function othersLink(path: string): { readonly path: string; readonly uid: number } | undefined {
  const me = process.getuid?.() ?? 0;
  for (let current = path; dirname(current) !== current; current = dirname(current)) {
    const entry = lstatSync(current);
    if (entry.isSymbolicLink() && entry.uid !== me && entry.uid !== 0) return { path: current, uid: entry.uid };
  }
  return undefined;
}

/**
 * The data directory as start-up checked it: its real path, and its device and inode (`dev:ino`). Plain data, so the
 * writer's and checkpointer's threads get it too, and the other broker processes of KEYWAY_PROCESSES its identity.
 */
export interface DataDirPin {
  readonly path: string;
  readonly identity: string;
}

/** The data directory's path no longer names the directory start-up checked (or the leader process did). */
export class DataDirMovedError extends ConfigError {
  override readonly name = 'DataDirMovedError';
  override readonly code = 'data_dir_moved';
}

/** The data directory, as every file in it is opened: its real path pinned, and the files `preparePrivateDataDir` set to 0600. */
export interface PrivateDataDir {
  readonly path: string;
  readonly pin: DataDirPin;
  readonly tightened: readonly string[];
  /** Lets go of the descriptor it holds. */
  close(): void;
}

const identityOf = (stats: BigIntStats): string => `${stats.dev}:${stats.ino}`;

function moved(path: string, expected: string, found: string | undefined): DataDirMovedError {
  return new DataDirMovedError(
    `${path} no longer names the data directory keyway checked at start-up (device and inode ${expected}, now ${found ?? 'nothing'}): ` +
      'someone who may write to a directory above it renamed or replaced it, so keyway opens nothing there. Find out who, ' +
      'put the directory back, and restart keyway',
  );
}

/**
 * Throws DataDirMovedError unless `pin.path` still names the directory pinned. A parent its group may write to (allowed:
 * see preparePrivateDataDir) lets a member of that group rename the data directory away after start-up and put her own
 * in its place; what is opened by path from then on would be hers. lstat: a symbolic link put there is not it either.
 */
export function checkDataDir(pin: DataDirPin): void {
  const now = lstatSync(pin.path, { bigint: true, throwIfNoEntry: false });
  const found = now === undefined ? undefined : identityOf(now);
  if (found !== pin.identity) throw moved(pin.path, pin.identity, found);
}

/**
 * What `open` opens by path in the data directory, checked to still be the one pinned just before and again once it is
 * open: one renamed away and replaced around the open is refused, and what was opened in the other is `undo`ne (on what
 * was opened, never by path; what was only read is dropped). Without a pin (a file no broker start-up checked: a test's, a tool's) it is just opened.
 * The check by path leaves a window between it and the open; SQLite opens by name whatever it is given (it resolves
 * /proc/self/fd/N back to the directory's name), so nothing narrower is to be had for its files.
 */
export async function openInDataDir<T>(pin: DataDirPin | undefined, open: () => T | Promise<T>, undo?: (opened: T) => unknown): Promise<T> {
  if (pin !== undefined) checkDataDir(pin);
  const opened = await open();
  try {
    if (pin !== undefined) checkDataDir(pin);
  } catch (error) {
    await undo?.(opened);
    throw error;
  }
  return opened;
}

/**
 * openInDataDir for what opens at once (an SQLite file): the audit writer's, checkpointer's and chain checker's threads
 * open theirs as their module loads, with no await, so a thread stopped while it starts is never mid-way through an
 * asynchronous module (a thread stopped while loading SQLite's native addon there aborted the whole process).
 */
export function openInDataDirSync<T>(pin: DataDirPin | undefined, open: () => T, undo?: (opened: T) => unknown): T {
  if (pin !== undefined) checkDataDir(pin);
  const opened = open();
  try {
    if (pin !== undefined) checkDataDir(pin);
  } catch (error) {
    undo?.(opened);
    throw error;
  }
  return opened;
}

/**
 * Refuses `dataDir` when someone else could change what it names, judged on what exists of it, so that a refused path
 * is refused before anything of it is created (under a parent another user controls).
 */
function refuseChangeable(dataDir: string): void {
  let existing = dataDir;
  while (lstatSync(existing, { throwIfNoEntry: false }) === undefined) existing = dirname(existing);
  const link = othersLink(existing);
  if (link !== undefined) {
    throw new ConfigError(
      `the data directory ${dataDir} is reached through ${link.path}, a symbolic link of uid ${link.uid}: whoever made it chose where keyway's keys and audit log go; ` +
        'set KEYWAY_DATA_DIR to a path without it',
    );
  }
  const real = realpathSync(existing);
  // Its group writing to a parent is allowed: a user's private group (umask 002), a volume's fsGroup. What it lets a
  // member of that group do after start-up (rename the data directory away) checkDataDir catches.
  const changeable = othersCanChange(existing === dataDir ? dirname(real) : real, { group: false });
  if (changeable !== undefined) {
    throw new ConfigError(
      `the data directory ${dataDir}${existing === dataDir && real !== dataDir ? ` (${real})` : ''} is reached through a directory others could change: ${changeable}, ` +
        `so what keyway opens there later need not be what it checked: put it under a directory only you and root can change`,
    );
  }
}

/**
 * Makes `dataDir` the broker's alone, or refuses it. One that does not exist yet is created
 * 0700 (exactly: the umask only ever takes bits away, so it is set again after). One that
 * exists must belong to this user and be closed to its group and others: if it is not, someone
 * chose that, what is in it may have been read already, and that is the operator's to judge,
 * so it is refused with what to run, never opened up or quietly tightened. Files in it that
 * group or others could read (an earlier keyway created its SQLite file under the umask; the
 * owner-only directory kept it private) are set to 0600; their names are returned for the log.
 *
 * Its files are opened by path long after this check (the audit writer's and checkpointer's threads, the shared
 * writer's socket on every rejoin), so the path must keep naming the directory checked: it is resolved once, every file
 * is opened under that real path, and no one else may be able to change the real path or any of its parents
 * (othersCanChange), its group aside; a KEYWAY_DATA_DIR through another user's symbolic link in /tmp is refused. All
 * of that is judged before anything is created. The directory is then held open and pinned by device and inode (the
 * descriptor keeps the inode from going to another directory while keyway runs), and every later open checks the path
 * still names it (openInDataDir). With `identity` (another broker process's, the leader's), it must be that directory:
 * it is never created then, since the leader made it; nor with `existing` (a command run beside the broker), which
 * with `reading` (it only reads) holds the directory to its owner and parents only, and tightens nothing.
 */
export function preparePrivateDataDir(
  dataDir: string,
  { identity, existing = false, reading = false }: { readonly identity?: string | undefined; readonly existing?: boolean; readonly reading?: boolean } = {},
): PrivateDataDir {
  // POSIX modes are not how Windows guards files.
  const posix = process.platform !== 'win32';
  if (posix) refuseChangeable(dataDir);
  const missing = lstatSync(dataDir, { throwIfNoEntry: false }) === undefined;
  if (identity !== undefined && missing) throw moved(dataDir, identity, undefined);
  if (existing && missing) throw new ConfigError(`no data directory at ${dataDir}`);
  const created = identity === undefined && !existing && mkdirSync(dataDir, { recursive: true, mode: DIRECTORY_MODE }) !== undefined;
  const path = realpathSync(dataDir);
  // Windows opens no directory as a file.
  const fd = posix ? openSync(path, constants.O_RDONLY | constants.O_DIRECTORY) : undefined;
  const close = (): void => {
    if (fd !== undefined) closeSync(fd);
  };
  try {
    const stats = fd === undefined ? statSync(path, { bigint: true }) : fstatSync(fd, { bigint: true });
    const pin = { path, identity: identityOf(stats) };
    if (identity !== undefined && pin.identity !== identity) throw moved(path, identity, pin.identity);
    if (fd === undefined) return { path, pin, tightened: [], close };
    if (created) {
      fchmodSync(fd, DIRECTORY_MODE);
      return { path, pin, tightened: [], close };
    }
    const [mode, uid] = [Number(stats.mode), Number(stats.uid)];
    const me = process.getuid?.();
    const fresh = `or set KEYWAY_DATA_DIR to a directory that does not exist yet: keyway creates it owner-only (${octal(DIRECTORY_MODE)})`;
    if (me !== undefined && uid !== me && existing) {
      // A command run beside the broker (keys, backup): the directory is the broker's user's, and changing it would lock the broker out.
      throw new ConfigError(
        `the data directory ${dataDir} belongs to uid ${uid}, not to the user keyway runs as (uid ${me}): run this command as uid ${uid}, the user the broker runs as`,
      );
    }
    if (me !== undefined && uid !== me) {
      throw new ConfigError(
        `the data directory ${dataDir} belongs to uid ${uid}, not to the user keyway runs as (uid ${me}), ` +
          `who alone may hold the master key and signing keys: chown it, ${fresh}`,
      );
    }
    // Read only (an audit, a backup, the key list): nothing held there is put at stake, and nothing there is tightened;
    // but whoever else may write in it could put her own database and master key there.
    if (reading && (mode & GROUP_OR_OTHERS_WRITE) !== 0) {
      throw new ConfigError(
        `the data directory ${dataDir} may be written by its group or others (mode ${octal(mode)}): whoever may could have put her own database and master key there`,
      );
    }
    if (reading) return { path, pin, tightened: [], close };
    if ((mode & GROUP_OR_OTHERS) !== 0) {
      throw new ConfigError(
        `the data directory ${dataDir} is open to its group or others (mode ${octal(mode)}), and it holds the master key and signing keys: ` +
          `run \`chmod 700 ${dataDir}\` if nobody else should have had access ` +
          `(if someone may have read it, change the master key and rotate the signing keys), ${fresh}`,
      );
    }
    // Regular files only: a symlink's target is not the data dir's to change. One gone since the listing has nothing to
    // tighten: SQLite deletes the -wal and -shm files as another process's last connection closes.
    const tightened = readdirSync(path).filter((name) => unlessGone(() => lstatSync(join(path, name)).isFile() && tightenPrivateFile(join(path, name))));
    return { path, pin, tightened, close };
  } catch (error) {
    close();
    throw error;
  }
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
/** What `look` says of a file, or false once the file is gone (ENOENT). */
function unlessGone(look: () => boolean): boolean {
  try {
    return look();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

export function tightenPrivateFile(path: string): boolean {
  if (process.platform === 'win32' || (statSync(path).mode & GROUP_OR_OTHERS) === 0) return false;
  chmodSync(path, FILE_MODE);
  return true;
}

/**
 * Opens what `open` opens in an existing data directory, held to what the broker holds its own to at start-up (owner,
 * mode, parents, links; nothing created), while its path still names the directory checked: a command run beside the
 * broker (keys, backup) never reads or writes a directory someone put in its place that the broker would refuse.
 */
export async function openInExistingDataDir<T>(
  dataDir: string,
  open: (path: string) => T | Promise<T>,
  { undo, reading = false }: { readonly undo?: (opened: T) => unknown; readonly reading?: boolean } = {},
): Promise<T> {
  const checked = preparePrivateDataDir(dataDir, { existing: true, reading });
  try {
    return await openInDataDir(checked.pin, () => open(checked.path), undo);
  } finally {
    checked.close();
  }
}
