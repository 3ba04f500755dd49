import { accessSync, constants, lstatSync, readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { isMiscasedPolicyFile, isPolicyFile, isPolicyTestFile, type PolicyFile } from '../core/policy/load-policies.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import { ownPrimaryGroupIsPrivate } from './private-group.ts';

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
const GROUP_WRITE = 0o020;
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
 * Who besides its owner may write to what has `stats`: every local user, the members of its group, or no one. A group
 * that is the broker's own primary group and its user's alone (`ownGroupAlone`: where each user has a group of their own,
 * Debian's and Fedora's default, with umask 002) is no one else: a checkout is `g+w` to that user alone.
 */
function otherWriters({ mode, gid }: { readonly mode: number; readonly gid: number }, ownGroupAlone: () => boolean): string | undefined {
  if ((mode & OTHERS_WRITE) !== 0) return 'every local user';
  if ((mode & GROUP_WRITE) === 0 || (gid === process.getgid?.() && ownGroupAlone())) return undefined;
  return `the members of group ${gid}`;
}

/** The broker's read of its policy directory: besides root and the broker's own user, the users (uids) it trusts to own policies. */
export interface ServedPolicies {
  readonly owners: readonly number[];
}

/** The directories judged so far, and whom the policies may belong to. */
interface Guard extends ServedPolicies {
  readonly checked: Set<string>;
  /** Whether the broker's primary group is its user's alone (read from the host once per read of the directory). */
  readonly ownGroupAlone: () => boolean;
}

/**
 * Refuses (ConfigError), on a mount that takes writes, a policy file or a directory the walk lists that its group or
 * every local user may write to (sticky or not: a file anyone adds to a listed directory is a policy), a directory above
 * either that they may rename it in (one not sticky: in a sticky one such as /tmp only an entry's owner may rename or
 * replace it), or any of these (a link on the way too) owned by someone other than root, the broker's user or one of
 * `owners`: whoever may could put a policy of theirs there, which the broker would load and grant by. As sshd's
 * StrictModes holds authorized_keys. Not where modes and owners are not POSIX's (no process.getuid: Windows).
 */
function refuseChangeable(path: string, leaf: string, { owners, checked, ownGroupAlone }: Guard): void {
  const me = process.getuid?.();
  if (me === undefined) return;
  const trusted = (uid: number): boolean => uid === 0 || uid === me || owners.includes(uid);
  const refuse = (current: string, stats: { readonly mode: number }, who: string): ConfigError =>
    new ConfigError(
      `${path}: ${current} may be written by ${who} (mode ${(stats.mode & 0o7777).toString(8)}), who could put a policy of theirs there: ` +
        `run \`chmod go-w ${current}\`, or keep the policies where only their owners can write`,
    );
  const stats = statSync(leaf);
  const who = otherWriters(stats, ownGroupAlone);
  if (who !== undefined && writableMount(leaf)) throw refuse(leaf, stats, who);
  for (let child = leaf, current = dirname(leaf); !checked.has(child); child = current, current = dirname(current)) {
    const above = statSync(current);
    const renamers = otherWriters(above, ownGroupAlone);
    const mounted = writableMount(current);
    if (renamers !== undefined && mounted && (above.mode & STICKY) === 0) throw refuse(current, above, renamers);
    // lstat: a link on the way is its owner's to replace where its directory is sticky, so on a mount taking writes there.
    const entry = lstatSync(child);
    if (!trusted(entry.uid) && (entry.isSymbolicLink() ? mounted : writableMount(child))) {
      const where = renamers !== undefined && mounted ? ` in ${current}, which ${renamers} may write (mode ${(above.mode & 0o7777).toString(8)})` : '';
      throw new ConfigError(
        `${path}: ${child} is owned by another user (uid ${entry.uid})${where}: they may change or replace what it holds or names. ` +
          'Keep the policies where only their owners can write: root, the user keyway runs as, or one of KEYWAY_POLICY_OWNERS',
      );
    }
    checked.add(child);
    if (current === child) break;
  }
}

/**
 * Why what is at `path`, whose real path is `real`, is not read, when a link leads it out of the policy directory's real
 * path `root`: what is read is what the policy directory holds, so a change outside it (another team's files, a file of
 * the host, a CI job's `/proc/self/environ`) never changes or reaches the policies. The broker and the CLI read alike.
 */
function outside(path: string, real: string, root: string): string | undefined {
  if (real === root || real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`)) return undefined;
  return `${path}: a link out of the policy directory (to ${real}), so nothing there is read: only what is under ${root} is a policy`;
}

/** A name that ends like a policy or test file, in any case: a link so named readTree judges, the walk never enters. */
const POLICY_NAMED = /\.ya?ml$/i;

/**
 * Every entry under `dir`, any depth, through links to directories. Passed over: a mounted ConfigMap's own
 * directories, those whose names begin with `..` beside a `..data` link (Kubernetes keeps the files in `..<timestamp>/`,
 * reached through it, and links them from the top: `deploy.yaml -> ..data/deploy.yaml`), which would otherwise load each
 * policy twice more under paths that change with every update of the map. Refused, naming it: a directory that cannot
 * be read, a link to a directory the walk is already in (`loop -> .`: two such would read some 2^40 paths), and one to a
 * directory out of it (outside). Returns them with the policy directory's real path.
 */
function listTree(dir: string, guard: Guard | undefined): { readonly root: string; readonly listed: Listed[] } {
  const root = readOrRefuse(dir, 'no policy is read', () => realpathSync(dir));
  if (guard !== undefined) {
    refuseChangeable(dir, root, guard);
    // The way there too: a link on it, or a directory it passes through, that another user may replace.
    refuseChangeable(dir, resolve(dir), guard);
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
      const out = outside(path, real, root);
      if (out !== undefined) throw new ConfigError(out);
      if (guard !== undefined) refuseChangeable(path, real, guard);
      walk(path, new Set([...within, real]));
    }
  };
  walk('', new Set([root]));
  return { root, listed };
}

/**
 * Every file under `dir`, any depth (listTree), whose name passes `keep`, with paths relative to `dir`. A symbolic link
 * to a file under `dir` is read as the file it names, under the link's own path; one that names no file, or a file out of
 * `dir` (outside), anything else named as a policy that is no file (a FIFO), a file that cannot be read, or a name
 * ending `.YAML`, is refused (a ConfigError naming it), never passed over.
 */
function readTree(dir: string, keep: (name: string) => boolean, guard?: Guard): PolicyFile[] {
  const files: PolicyFile[] = [];
  const refused: string[] = [];
  const { root, listed } = listTree(dir, guard);
  for (const { entry, path } of listed) {
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
      const real = readOrRefuse(path, 'the policy there is not read', () => realpathSync(full));
      const out = outside(path, real, root);
      if (out !== undefined) refused.push(out);
      else {
        if (guard !== undefined) refuseChangeable(path, real, guard);
        files.push({ path, text: readOrRefuse(path, 'the policy there is not read', () => readFileSync(full, 'utf8')) });
      }
    }
  }
  if (refused.length > 0) throw new ConfigError(refused.join('; '));
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * Every policy file under `dir`, any depth, with paths relative to it. Test files (`*.test.yaml`) are not policies.
 * `served` (the broker's read): refused, naming it, when someone other than root, the broker's user or one of its
 * `owners` could change a file or a directory on its way (refuseChangeable).
 */
export function readPolicyDirectory(dir: string, { served }: { readonly served?: ServedPolicies } = {}): PolicyFile[] {
  if (served === undefined) return readTree(dir, isPolicyFile);
  let alone: boolean | undefined;
  const ownGroupAlone = () => (alone ??= ownPrimaryGroupIsPrivate());
  return readTree(dir, isPolicyFile, { ...served, checked: new Set(), ownGroupAlone });
}

/** Every policy test file (`*.test.yaml`) under `dir`. */
export function readPolicyTestFiles(dir: string): PolicyFile[] {
  return readTree(dir, isPolicyTestFile);
}
