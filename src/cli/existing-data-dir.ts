import { ConfigError } from '../core/settings/read-settings.ts';
import { openInExistingDataDir } from '../storage/private-data-dir.ts';
import { CliError } from './command.ts';

/**
 * openInExistingDataDir for a command: a data directory it refuses (one the broker would refuse) is the command's exit
 * 1, `cannot <what> <dir>: <why>`.
 */
export async function openCommandDataDir<T>(
  what: string,
  dataDir: string,
  open: (path: string) => T | Promise<T>,
  options: Parameters<typeof openInExistingDataDir<T>>[2] = {},
): Promise<T> {
  try {
    return await openInExistingDataDir(dataDir, open, options);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`cannot ${what} ${dataDir}: ${error.message}`, 1);
    throw error;
  }
}
