import type { RepositoryName } from '../../../core/exchange/ports.ts';
import type { CheckRunRequest, CheckRunUpdate } from '../app/check-run.ts';
import type { RepositoryRole } from '../app/collaborator-permission.ts';
import type { DirectoryEntry, RepositoryFile } from '../app/contents.ts';

export const fullName = (repository: RepositoryName): string => `${repository.owner}/${repository.name}`;
export const sameRepository = (a: RepositoryName, b: RepositoryName): boolean => fullName(a).toLowerCase() === fullName(b).toLowerCase();

/**
 * What the webhook handlers do in one repository, as the App's installation there (contents:
 * read, checks: write). repositoryAccessVia (github-repository-access.ts) implements it over the GitHub App client (src/features/github/app/).
 */
export interface RepositoryAccess {
  /** The repository as GitHub names it now: its owner's login and its name, in GitHub's case, whatever case it was opened by. */
  readonly repository: RepositoryName;
  /** A file or a directory listing at `ref` (default: the default branch); undefined when there is none at that path. */
  contents(path: string, ref?: string): Promise<RepositoryFile | readonly DirectoryEntry[] | undefined>;
  /** The commit a branch points at now. */
  branchHead(branch: string): Promise<string>;
  /** A user's role on the repository now (`none` for a user GitHub does not know). */
  permissionOf(username: string): Promise<RepositoryRole>;
  /** Creates a check run on a commit; resolves to its id. */
  createCheckRun(checkRun: CheckRunRequest): Promise<number>;
  /** Updates a check run `createCheckRun` created. */
  updateCheckRun(id: number, update: CheckRunUpdate): Promise<void>;
  /** Ends the access (revokes its installation token). */
  close(): Promise<void>;
}

/** A contents answer that is a directory listing. */
export const isListing = (answer: RepositoryFile | readonly DirectoryEntry[] | undefined): answer is readonly DirectoryEntry[] => Array.isArray(answer);

/**
 * Opens access to a repository by name: the repository of that name on the account the App's installation
 * under the owner's name is on, and every call of the access reaches that one only (by its id); with `id`,
 * only if the name still belongs to the repository of that id (GitHub's numeric id, never reused); with
 * `ownerId`, only if that installation is on the account of that id.
 */
export type OpenRepositoryAccess = (repository: RepositoryName, id?: number, ownerId?: number) => Promise<RepositoryAccess>;
