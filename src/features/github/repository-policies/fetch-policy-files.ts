import pMap from 'p-map';
import { isMiscasedPolicyFile, isPolicyFile, type PolicyFile } from '../../../core/policy/load-policies.ts';
import { isListing, type RepositoryAccess } from './repository-access.ts';
import { KeywayError } from '../../../core/errors/keyway-error.ts';
import { GitHubError } from '../app/github-error.ts';

/**
 * Bounds on what one fetch walks: a repository cannot make keyway fetch without end, nor hold more policy text in memory than a
 * Worker isolate can spare (500 files of what the GitHub client reads for one answer would be some 90 MiB). A file of more than
 * `fileBytes`, which in base64 (a line feed every 60 characters) and GitHub's other fields would not fit in the one answer the
 * GitHub client reads (OUTBOUND_MAX_BYTES), is refused by its size: read, it would look like GitHub failing, a delivery to send
 * again, rather than a set that does not load.
 */
export const POLICY_FETCH_LIMITS = { files: 500, directories: 100, depth: 8, characters: 8 * 1024 * 1024, fileBytes: 180 * 1024 } as const;

export class PolicyFetchError extends KeywayError {
  override readonly name = 'PolicyFetchError';
  readonly code = 'policy_fetch_refused';
}

/** Where a read is: ` at REF`, or nothing for the default branch. */
const at = (ref: string | undefined): string => (ref === undefined ? '' : ` at ${ref}`);

const tooLarge = (path: string, ref: string | undefined): PolicyFetchError =>
  new PolicyFetchError(`${path}${at(ref)} is larger than ${POLICY_FETCH_LIMITS.fileBytes} bytes: keyway reads policy files of at most that`);

/**
 * What is at `path`, as `access.contents` reads it. An answer larger than the GitHub client reads of one is the content's size,
 * not GitHub failing: a file of more than `fileBytes` (its base64 and GitHub's other fields), or a listing of thousands of
 * entries. Taken for GitHub failing, it was a 503 the next exchange or delivery met again, never a set that does not load.
 */
async function contentsAt(access: RepositoryAccess, path: string, ref: string | undefined): ReturnType<RepositoryAccess['contents']> {
  try {
    return await access.contents(path, ref);
  } catch (error) {
    if (error instanceof GitHubError && error.code === 'too_large') {
      throw new PolicyFetchError(
        `${path}${at(ref)} is larger than keyway reads (a file of over ${POLICY_FETCH_LIMITS.fileBytes} bytes, or a directory of thousands of entries)`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * The policy files under `dir` at `ref` (default: the default branch; recursively, bounded): path under `dir` → blob sha.
 * Listing alone shows whether a change touches them, at the cost of one call per directory.
 */
export async function listPolicyFiles(access: RepositoryAccess, dir: string, ref: string | undefined): Promise<Map<string, string>> {
  const blobs = new Map<string, string>();
  let directories = 0;
  const walk = async (path: string, depth: number): Promise<void> => {
    if (++directories > POLICY_FETCH_LIMITS.directories) throw new PolicyFetchError(`more than ${POLICY_FETCH_LIMITS.directories} directories under ${dir}`);
    const listing = await contentsAt(access, path, ref);
    if (listing === undefined && path === dir) return; // no policy directory at this commit: an empty set
    if (!isListing(listing)) throw new PolicyFetchError(`${path}${at(ref)} is not a directory`);
    for (const entry of listing) {
      if (!entry.path.startsWith(`${path}/`)) throw new PolicyFetchError(`${entry.path} is listed under ${path}`);
      if (entry.type === 'dir') {
        if (depth >= POLICY_FETCH_LIMITS.depth) throw new PolicyFetchError(`${entry.path} is nested deeper than ${POLICY_FETCH_LIMITS.depth} directories`);
        await walk(entry.path, depth + 1);
      } else if (isMiscasedPolicyFile(entry.name)) {
        throw new PolicyFetchError(`${entry.path}${at(ref)}: a policy file's name ends in .yaml or .yml, in lower case; rename it, or it is not read`);
      } else if (isPolicyFile(entry.name)) {
        // A symlink (or anything but a file) named as a policy: skipping it would silently drop a policy, a deny among them.
        if (entry.type !== 'file') throw new PolicyFetchError(`${entry.path}${at(ref)} is a ${entry.type}, not a file: keyway reads policy files only`);
        if (blobs.size >= POLICY_FETCH_LIMITS.files) throw new PolicyFetchError(`more than ${POLICY_FETCH_LIMITS.files} policy files under ${dir}`);
        if (entry.size > POLICY_FETCH_LIMITS.fileBytes) throw tooLarge(entry.path, ref);
        blobs.set(entry.path.slice(dir.length + 1), entry.sha);
      }
    }
  };
  await walk(dir, 0);
  return blobs;
}

/**
 * The text of the policy file at `path` and `ref`, or undefined when there is none (or a directory is there). GitHub answers
 * a symlink to a file with that file, under its own path: the policy would be text outside the policy directory, changed
 * without the review it gets, so that answer is refused.
 */
export async function readPolicyFile(access: RepositoryAccess, path: string, ref: string | undefined): Promise<string | undefined> {
  const file = await contentsAt(access, path, ref);
  if (file === undefined || isListing(file)) return undefined;
  // GitHub lists a submodule as a file; read, it answers `type: submodule` (a symlink to no file of the repository, `symlink`).
  if (file.type !== 'file') throw new PolicyFetchError(`${path}${at(ref)} is a ${file.type}, not a file: keyway reads policy files only`);
  if (file.path !== path) throw new PolicyFetchError(`${path}${at(ref)} is not a file (GitHub answered with ${file.path}): keyway reads policy files only`);
  if (file.size > POLICY_FETCH_LIMITS.fileBytes) throw tooLarge(path, ref);
  if (file.text === undefined) throw new PolicyFetchError(`${path}${at(ref)} is not UTF-8 text`);
  return file.text;
}

/**
 * How many policy files are read at once. One by one, a set of the 500 files allowed took a push's delivery minutes
 * (one GitHub call each, the set read up to three times before its switch); GitHub's secondary rate limits ask
 * integrations not to send many requests at once, and a few at a time keeps well inside them.
 */
export const POLICY_FETCH_CONCURRENCY = 8;

/** Fetches the listed policy files at `ref`, with paths under `dir` as the loader names them, in path order. */
export async function fetchPolicyFiles(
  access: RepositoryAccess,
  dir: string,
  ref: string | undefined,
  blobs: ReadonlyMap<string, string>,
): Promise<PolicyFile[]> {
  let characters = 0;
  return pMap(
    [...blobs.keys()].sort(),
    async (path): Promise<PolicyFile> => {
      // Listed as a file, but possibly a symlink or gone by now (a push since the listing).
      const text = await readPolicyFile(access, `${dir}/${path}`, ref);
      if (text === undefined) throw new PolicyFetchError(`${dir}/${path}${at(ref)} is not a file`);
      characters += text.length;
      if (characters > POLICY_FETCH_LIMITS.characters) {
        throw new PolicyFetchError(`the policy files under ${dir}${at(ref)} hold more than ${POLICY_FETCH_LIMITS.characters} characters`);
      }
      return { path, text };
    },
    { concurrency: POLICY_FETCH_CONCURRENCY },
  );
}

/** The policy directory at `ref` (default: the default branch), listed and fetched. */
export async function readPolicyFilesAt(access: RepositoryAccess, dir: string, ref: string | undefined): Promise<PolicyFile[]> {
  return fetchPolicyFiles(access, dir, ref, await listPolicyFiles(access, dir, ref));
}
