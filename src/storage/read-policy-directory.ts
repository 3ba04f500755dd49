import { accessSync, constants, lstatSync, readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isMiscasedPolicyFile, isPolicyFile, isPolicyTestFile, type PolicyFile } from '../core/policy/load-policies.ts';
import { ConfigError } from '../core/settings/read-settings.ts';

/** An entry under the policy directory, and its path relative to it with `/` separators. */
interface Listed {
  readonly entry: Dirent;
  readonly path: string;
}

/** What `read` returns, or a ConfigError naming `path` with the code of the error it threw (EACCES, ELOOP). */
function readOrRefuse<T>(path: string, what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined) throw error;
    throw new ConfigError(`${path}: cannot be read (${code}), so ${what}`);
  }
}

/** What the link at `path` names: a file, a directory, or neither (it dangles, loops (ELOOP), cannot be followed (EACCES), or names a FIFO). */
function linkTarget(path: string): 'file' | 'directory' | undefined {
  try {
    const stats = statSync(path);
    return stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : undefined;
  } catch {
    return undefined;
  }
}

const OTHERS_WRITE = 0o002;
const STICKY = 0o1000;

/** Whether a write to `path` could succeed for someone its mode lets write: not on a read-only mount (a mounted ConfigMap). */
function writableMount(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EROFS';
  }
}

/**
 * Refuses (ConfigError) a policy file or a directory the walk lists that every local user may write to (sticky or not:
 * a file anyone adds to a listed directory is a policy), or a directory above either that they may rename it in (one not
 * sticky: in a sticky one such as /tmp only an entry's owner may rename or replace it, so an entry there on the way must
 * be root's or the broker's own), on a mount that takes writes. Whoever may could put a policy of theirs there, which
 * the broker would load and grant by. `checked` holds the directories already judged.
 */
function refuseOpenToOthers(path: string, real: string, checked: Set<string>): void {
  const refuse = (current: string, mode: number): ConfigError =>
    new ConfigError(
      `${path}: ${current} may be written by every local user (mode ${(mode & 0o7777).toString(8)}), who could put a policy of theirs there: ` +
        `run \`chmod o-w ${current}\`, or keep the policies where only their owners can write`,
    );
  const { mode } = statSync(real);
  if ((mode & OTHERS_WRITE) !== 0 && writableMount(real)) throw refuse(real, mode);
  checked.add(real);
  for (let child = real, current = dirname(real); current !== child; child = current, current = dirname(current)) {
    const above = statSync(current).mode;
    if ((above & OTHERS_WRITE) !== 0 && writableMount(current)) {
      if ((above & STICKY) === 0) throw refuse(current, above);
      // Sticky, only its owner may rename or replace the entry: one another user made (a squatted /tmp/policies, a link).
      const { uid } = lstatSync(child);
      if (uid !== 0 && uid !== process.getuid?.())
        throw new ConfigError(
          `${path}: ${child} is owned by another user (uid ${uid}) in ${current}, which every local user may write (mode ${(above & 0o7777).toString(8)}): ` +
            'they may replace what it holds or names. Keep the policies where only their owners can write',
        );
    }
    if (checked.has(current)) break;
    checked.add(current);
  }
}

/** A name that ends like a policy or test file, in any case: a link so named readTree judges, the walk never enters. */
const POLICY_NAMED = /\.ya?ml$/i;

/**
 * Every entry under `dir`, any depth, through links to directories. Passed over: a mounted ConfigMap's own
 * directories, those whose names begin with `..` beside a `..data` link (Kubernetes keeps the files in `..<timestamp>/`,
 * reached through it, and links them from the top: `deploy.yaml -> ..data/deploy.yaml`), which would otherwise load each
 * policy twice more under paths that change with every update of the map. Refused, naming it: a directory that cannot
 * be read, and a link to a directory the walk is already in (`loop -> .`: two such would read some 2^40 paths).
 */
function listTree(dir: string, guarded: Set<string> | undefined): Listed[] {
  const root = readOrRefuse(dir, 'no policy is read', () => realpathSync(dir));
  if (guarded !== undefined) {
    refuseOpenToOthers(dir, root, guarded);
    // The way there too: a link on it, or a directory it passes through, that another user may replace.
    refuseOpenToOthers(dir, resolve(dir), guarded);
  }
  const listed: Listed[] = [];
  const walk = (relative: string, within: ReadonlySet<string>): void => {
    const full = relative === '' ? dir : join(dir, relative);
    const entries = readOrRefuse(relative || dir, 'no policy under it is read', () => readdirSync(full, { withFileTypes: true }));
    const configMap = entries.some((entry) => entry.name === '..data' && entry.isSymbolicLink());
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (configMap && entry.name.startsWith('..')) continue;
      listed.push({ entry, path });
      const directory = entry.isDirectory() || (entry.isSymbolicLink() && linkTarget(join(full, entry.name)) === 'directory');
      // A link named as a policy is readTree's to refuse, not a directory to walk.
      if (!directory || (entry.isSymbolicLink() && POLICY_NAMED.test(entry.name))) continue;
      const real = readOrRefuse(path, 'no policy under it is read', () => realpathSync(join(full, entry.name)));
      if (within.has(real)) throw new ConfigError(`${path}: a link back to a directory it is in, so the policies under it would be read without end`);
      if (guarded !== undefined) refuseOpenToOthers(path, real, guarded);
      walk(path, new Set([...within, real]));
    }
  };
  walk('', new Set([root]));
  return listed;
}

/**
 * Every file under `dir`, any depth (listTree), whose name passes `keep`, with paths relative to `dir`. A symbolic link
 * to a file is read as the file it names, under the link's own path; one that names no file, anything else named as a
 * policy that is no file (a FIFO), a file that cannot be read, or a name ending `.YAML`, is refused (a ConfigError
 * naming it), never passed over.
 */
function readTree(dir: string, keep: (name: string) => boolean, guarded?: Set<string>): PolicyFile[] {
  const files: PolicyFile[] = [];
  const refused: string[] = [];
  for (const { entry, path } of listTree(dir, guarded)) {
    const full = join(dir, path);
    const link = entry.isSymbolicLink();
    const target = link ? linkTarget(full) : undefined;
    if (entry.isDirectory() || (target === 'directory' && !POLICY_NAMED.test(entry.name))) continue;
    if (isMiscasedPolicyFile(entry.name)) refused.push(`${path}: a policy file's name ends in .yaml or .yml, in lower case; rename it, or it is not read`);
    else if (!keep(entry.name)) continue;
    // Anything named as a policy that is no file (a FIFO, a link dangling, looping or to a directory) would drop that
    // policy, a deny among them; a FIFO would hold the read forever.
    else if (!link && !entry.isFile()) refused.push(`${path}: not a file, so no policy is read there`);
    else if (link && target !== 'file') refused.push(`${path}: a link to no file, so no policy is read there`);
    else {
      if (guarded !== undefined)
        refuseOpenToOthers(
          path,
          readOrRefuse(path, 'the policy there is not read', () => realpathSync(full)),
          guarded,
        );
      files.push({ path, text: readOrRefuse(path, 'the policy there is not read', () => readFileSync(full, 'utf8')) });
    }
  }
  if (refused.length > 0) throw new ConfigError(refused.join('; '));
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * Every policy file under `dir`, any depth, with paths relative to it. Test files (`*.test.yaml`) are not policies.
 * `served` (the broker's read): refused, naming it, when a file or a directory on its real path may be written by
 * every local user (refuseOpenToOthers).
 */
export function readPolicyDirectory(dir: string, { served = false }: { readonly served?: boolean } = {}): PolicyFile[] {
  return readTree(dir, isPolicyFile, served ? new Set() : undefined);
}

/** Every policy test file (`*.test.yaml`) under `dir`. */
export function readPolicyTestFiles(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyTestFile);
}
