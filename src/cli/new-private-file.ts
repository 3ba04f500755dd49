import { linkSync, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { KeywayError } from '../core/errors/keyway-error.ts';
import { createPrivateFile, othersCanChange } from '../storage/private-data-dir.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Why `output` is not written: its directory is missing, or others could change what is on its path. */
export class OutputRefused extends KeywayError {
  override readonly name = 'OutputRefused';
  readonly code = 'output_refused';
}

/**
 * Makes a new file at `output` that is 0600 whatever the umask, whole or absent, and never over another file. `write`
 * fills it at a path inside a staging directory beside `output` that mkdtemp makes 0700, which then takes its name by
 * link, not rename: link fails with EEXIST if `output` appeared meanwhile, where rename would replace it. The staging
 * directory goes whatever happens, also when the command is stopped by SIGINT, SIGTERM or SIGHUP (not by SIGKILL); a
 * signal that comes while `write` runs synchronously (SQLite's backup copies every page in one step) is handled after it.
 *
 * Writing and linking go by path (SQLite's backup opens its destination by name), so nobody else may be able to
 * rename or replace anything on that path: a directory others can write to lets them rename the staging directory
 * away, however private it is, and put one of their own in its place.
 */
export async function writeNewPrivateFile(output: string, write: (path: string) => Promise<void>): Promise<void> {
  const directory = privateDirectory(dirname(output));
  const target = join(directory, basename(output));
  const staging = mkdtempSync(join(directory, `.${basename(output)}.partial-`));
  const removeStaging = () => rmSync(staging, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    try {
      removeStaging();
    } finally {
      process.exit(128 + constants.signals[signal]);
    }
  };
  for (const signal of SIGNALS) process.once(signal, onSignal);
  try {
    const partial = join(staging, basename(output));
    createPrivateFile(partial);
    await write(partial);
    linkSync(partial, target);
  } finally {
    for (const signal of SIGNALS) process.off(signal, onSignal);
    removeStaging();
  }
}

/**
 * `directory` with its symbolic links resolved, once, so that later steps do not follow a link someone may change;
 * refused when someone other than this user or root owns it or one of its parents, or may write to one that is not
 * sticky (in a sticky directory such as /tmp, only an entry's owner may rename it).
 */
function privateDirectory(directory: string): string {
  let real: string;
  try {
    real = realpathSync(directory);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new OutputRefused(code === 'ENOENT' ? `there is no directory ${directory}` : code === 'ENOTDIR' ? `${directory} is not a directory` : message);
  }
  if (!statSync(real).isDirectory()) throw new OutputRefused(`${directory} is not a directory`);
  const changeable = othersCanChange(real, { group: true });
  if (changeable !== undefined) {
    throw new OutputRefused(
      `${changeable}, who could swap the file while it is written; write it into a directory that only you and root can change, then move it`,
    );
  }
  return real;
}
