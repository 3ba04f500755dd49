import * as v from 'valibot';
import { repositoryPath, segment, type GitHubClient, type RepositoryLocation } from './github-client.ts';
import { GitHubError } from './github-error.ts';
import { parseAnswer } from './parse-answer.ts';

export interface RepositoryFile {
  readonly path: string;
  readonly sha: string;
  readonly text: string;
}

export interface DirectoryEntry {
  readonly path: string;
  readonly name: string;
  readonly type: string;
  readonly sha: string;
}

const FileAnswer = v.looseObject({ type: v.literal('file'), path: v.string(), sha: v.string(), encoding: v.literal('base64'), content: v.string() });
const DirectoryAnswer = v.array(v.looseObject({ type: v.string(), path: v.string(), name: v.string(), sha: v.string() }));

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
    return parseAnswer(DirectoryAnswer, body, `contents of ${location.path}`).map(({ path, name, type, sha }) => ({ path, name, type, sha }));
  const file = parseAnswer(FileAnswer, body, `contents of ${location.path}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(
      Uint8Array.from(atob(file.content.replace(/\s+/g, '')), (char) => char.charCodeAt(0)),
    );
  } catch (cause) {
    throw new GitHubError('malformed', `contents of ${location.path} are not UTF-8 text in base64`, { cause });
  }
  return { path: file.path, sha: file.sha, text };
}
