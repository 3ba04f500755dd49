import { lstatSync, readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isMiscasedPolicyFile, isPolicyFile, isPolicyTestFile, type PolicyFile } from '../core/policy/load-policies.ts';
import { ConfigError } from '../core/settings/read-settings.ts';

/**
 * Whether `path` is inside a mounted ConfigMap's own directories: a directory whose name begins with `..` beside a
 * `..data` link (Kubernetes keeps the files in `..<timestamp>/`, reached through it). Elsewhere a directory so named is
 * read like any other, beside a `..data` that is a plain file or directory too.
 */
function inConfigMapInternals(dir: string, path: string): boolean {
  const segments = path.split('/').slice(0, -1);
  return segments.some(
    (segment, at) => segment.startsWith('..') && lstatSync(join(dir, ...segments.slice(0, at), '..data'), { throwIfNoEntry: false })?.isSymbolicLink() === true,
  );
}

/** Whether the link at `path` names a regular file: not when it dangles, loops (ELOOP) or cannot be followed (EACCES). */
function namesFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Every entry under `dir`, any depth; a directory that cannot be read (EACCES) is a ConfigError naming it, not a crash. */
function listTree(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true });
  } catch (error) {
    const { code, path } = error as NodeJS.ErrnoException;
    if (code === undefined) throw error;
    throw new ConfigError(`${path === undefined ? dir : relative(dir, path) || dir}: cannot be read (${code}), so no policy under it is read`);
  }
}

/**
 * Every file under `dir`, any depth, whose name passes `keep`, with paths relative to `dir` and `/` separators. A symbolic
 * link to a file is read as the file it names, under the link's own path; one that names no file, anything else named as
 * a policy that is no file (a FIFO), or a name ending `.YAML`, is refused (a ConfigError naming it), never passed over.
 * A mounted ConfigMap's own directories are passed over (inConfigMapInternals): its files are linked to from the top
 * (`deploy.yaml -> ..data/deploy.yaml`), and would otherwise load twice more, never under their own names, under paths
 * that change with every update of the map.
 */
function readTree(dir: string, keep: (name: string) => boolean): PolicyFile[] {
  const files: PolicyFile[] = [];
  const refused: string[] = [];
  for (const entry of listTree(dir)) {
    const full = join(entry.parentPath, entry.name);
    const path = relative(dir, full).split(sep).join('/');
    if (inConfigMapInternals(dir, path)) continue;
    if (entry.isDirectory()) continue;
    const link = entry.isSymbolicLink();
    if (isMiscasedPolicyFile(entry.name)) refused.push(`${path}: a policy file's name ends in .yaml or .yml, in lower case; rename it, or it is not read`);
    else if (!keep(entry.name)) continue;
    // Anything named as a policy that is no file (a FIFO, a link dangling, looping or to a directory) would drop that
    // policy, a deny among them; a FIFO would hold the read forever.
    else if (!link && !entry.isFile()) refused.push(`${path}: not a file, so no policy is read there`);
    else if (link && !namesFile(full)) refused.push(`${path}: a link to no file, so no policy is read there`);
    else files.push({ path, text: readFileSync(full, 'utf8') });
  }
  if (refused.length > 0) throw new ConfigError(refused.join('; '));
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
