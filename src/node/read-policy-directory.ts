import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isPolicyFile, type PolicyFile } from '../policy/load-policies.ts';

/** Every policy file under `dir`, any depth, with paths relative to it. Test files (`*.test.yaml`) are not policies. */
export function readPolicyDirectory(dir: string): PolicyFile[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && isPolicyFile(entry.name))
    .map((entry) => {
      const full = join(entry.parentPath, entry.name);
      return { path: relative(dir, full).split(sep).join('/'), text: readFileSync(full, 'utf8') };
    });
}
