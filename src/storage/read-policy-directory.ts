import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isMiscasedPolicyFile, isPolicyFile, isPolicyTestFile, type PolicyFile } from '../core/policy/load-policies.ts';
import { ConfigError } from '../core/settings/read-settings.ts';

const underDotDotDirectory = (path: string) =>
  path
    .split('/')
    .slice(0, -1)
    .some((segment) => segment.startsWith('..'));

/**
 * Every file under `dir`, any depth, whose name passes `keep`, with paths relative to `dir` and `/` separators. A symbolic
 * link to a file is read as the file it names, under the link's own path. Directories whose names begin with `..` are
 * passed over: Kubernetes keeps a mounted ConfigMap's files in `..<timestamp>/`, reached through `..data` and linked to
 * from the top (`deploy.yaml -> ..data/deploy.yaml`), so each policy would otherwise load twice, never under its own name, under paths that
 * change with every update of the map.
 */
function readTree(dir: string, keep: (name: string) => boolean): PolicyFile[] {
  const files: PolicyFile[] = [];
  const miscased: string[] = [];
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = join(entry.parentPath, entry.name);
    const path = relative(dir, full).split(sep).join('/');
    if (underDotDotDirectory(path)) continue;
    if (!(entry.isFile() || (entry.isSymbolicLink() && statSync(full, { throwIfNoEntry: false })?.isFile() === true))) continue;
    if (keep(entry.name)) files.push({ path, text: readFileSync(full, 'utf8') });
    else if (isMiscasedPolicyFile(entry.name)) miscased.push(path);
  }
  if (miscased.length > 0) {
    throw new ConfigError(`${miscased.join(', ')}: a policy file's name ends in .yaml or .yml, in lower case; rename it, or it is not read`);
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** Every policy file under `dir`, any depth, with paths relative to it. Test files (`*.test.yaml`) are not policies. */
export function readPolicyDirectory(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyFile);
}

/** Every policy test file (`*.test.yaml`) under `dir`. */
export function readPolicyTestFiles(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyTestFile);
}
