import { readFileSync } from 'node:fs';
import { CliError } from './command.ts';

/** The file an option names, read and parsed: a file that cannot be read or parsed is a CliError naming the option and the file. */
export function readOptionFile<T>(option: string, path: string, parse: (text: string) => T): T {
  try {
    return parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(`${option} ${path}: ${(error as Error).message}`);
  }
}
