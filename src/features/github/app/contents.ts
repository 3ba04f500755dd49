import * as v from 'valibot';
import { repositoryPath, segment, type GitHubClient, type RepositoryLocation } from './github-client.ts';
import { GitHubError } from './github-error.ts';
import { parseAnswer } from './parse-answer.ts';

export interface RepositoryFile {
  /**
   * `file`, or what GitHub answers for a path that holds no file: `submodule`, or `symlink` for a link whose target is no file
   * of the repository (one to a file is answered as that file, under the target's path). Such an entry has no text.
   */
  readonly type: string;
  readonly path: string;
  readonly sha: string;
  /** In bytes. */
  readonly size: number;
  /** Undefined when the file is not UTF-8 text, GitHub does not send its content (`encoding: none`, from 1 MB), or it is no file. */
  readonly text: string | undefined;
}

export interface DirectoryEntry {
  readonly path: string;
  readonly name: string;
  readonly type: string;
  readonly sha: string;
  /** In bytes (0 for a directory). */
  readonly size: number;
}

const size = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const EntryAnswer = v.looseObject({ type: v.string(), path: v.string(), sha: v.string(), size });
const FileAnswer = v.looseObject({ type: v.literal('file'), path: v.string(), sha: v.string(), size, encoding: v.string(), content: v.string() });
const DirectoryAnswer = v.array(v.looseObject({ type: v.string(), path: v.string(), name: v.string(), sha: v.string(), size }));

/**
 * `GET /repos/{owner}/{repo}/contents/{path}?ref=` (or `/repositories/{id}/contents/…`): a file
 * (its text) or a directory (its entries), read with an installation token.
 */
export async function getContents(
  client: GitHubClient,
  token: string,
  location: RepositoryLocation & { readonly path: string; readonly ref?: string },
): Promise<RepositoryFile | readonly DirectoryEntry[]> {
  const path = location.path
    .split('/')
    .filter((part) => part !== '')
    .map(segment)
    .join('/');
  const query = location.ref === undefined ? '' : `?ref=${encodeURIComponent(location.ref)}`;
  const { body } = await client.request({
    method: 'GET',
    path: `${repositoryPath(location)}/contents/${path}${query}`,
    auth: { as: 'installation', token },
  });
  if (Array.isArray(body))
    return parseAnswer(DirectoryAnswer, body, `contents of ${location.path}`).map(({ path, name, type, sha, size }) => ({ path, name, type, sha, size }));
  const entry = parseAnswer(EntryAnswer, body, `contents of ${location.path}`);
  if (entry.type !== 'file') return { type: entry.type, path: entry.path, sha: entry.sha, size: entry.size, text: undefined };
  const file = parseAnswer(FileAnswer, body, `contents of ${location.path}`);
  const answered = { type: file.type, path: file.path, sha: file.sha, size: file.size };
  if (file.encoding !== 'base64') return { ...answered, text: undefined };
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(file.content.replace(/\s+/g, '')), (char) => char.charCodeAt(0));
  } catch (cause) {
    throw new GitHubError('malformed', `contents of ${location.path} are not base64`, { cause });
  }
  // What the repository holds, not how GitHub answered: the caller decides what a file that is not text means.
  try {
    return { ...answered, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    return { ...answered, text: undefined };
  }
}
