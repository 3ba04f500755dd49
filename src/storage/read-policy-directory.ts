import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isPolicyFile, isPolicyTestFile, type PolicyFile } from '../core/policy/load-policies.ts';

/** Every file under `dir`, any depth, whose name passes `keep`, with paths relative to `dir` and `/` separators. */
function readTree(dir: string, keep: (name: string) => boolean): PolicyFile[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && keep(entry.name))
    .map((entry) => {
      const full = join(entry.parentPath, entry.name);
      return { path: relative(dir, full).split(sep).join('/'), text: readFileSync(full, 'utf8') };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
}

/** Every policy file under `dir`, any depth, with paths relative to it. Test files (`*.test.yaml`) are not policies. */
export function readPolicyDirectory(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyFile);
}

/** Every policy test file (`*.test.yaml`) under `dir`. */
export function readPolicyTestFiles(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyTestFile);
}
