import { readFileSync } from 'node:fs';
import { keptRootCheckpoints } from '../core/audit/kept-roots.ts';
import { CliError } from './command.ts';

/** The root checkpoints kept apart from the broker (`--roots FILE`), as GET /v1/audit/root-checkpoints answered: their JWS. */
export function readKeptRoots(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`--roots ${path}: ${(error as Error).message}`);
  }
  try {
    return keptRootCheckpoints(text);
  } catch (error) {
    throw new CliError(`--roots ${path}: ${(error as Error).message}`);
  }
}
