import { keptRootCheckpoints } from '../core/audit/kept-roots.ts';
import { readOptionFile } from './option-file.ts';

/** The root checkpoints kept apart from the broker (`--roots FILE`), as GET /v1/audit/root-checkpoints answered: their JWS. */
export function readKeptRoots(path: string): string[] {
  return readOptionFile('--roots', path, keptRootCheckpoints);
}
