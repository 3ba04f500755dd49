import type { CheckRunAnnotation } from './review-policy-change.ts';

/** Owners and names as GitHub spells them; compared without regard to case, as GitHub does. */
export interface RepositoryName {
  readonly owner: string;
  readonly name: string;
}

export const fullName = (repository: RepositoryName): string => `${repository.owner}/${repository.name}`;
export const sameRepository = (a: RepositoryName, b: RepositoryName): boolean => fullName(a).toLowerCase() === fullName(b).toLowerCase();

export interface DirectoryEntry {
  readonly path: string;
  readonly name: string;
  readonly type: string;
  readonly sha: string;
}

export interface RepositoryFile {
  readonly path: string;
  readonly sha: string;
  readonly text: string;
}

export interface CheckRun {
  readonly name: string;
  readonly head_sha: string;
  readonly status: 'completed';
  readonly conclusion: 'success' | 'failure';
  readonly output: { readonly title: string; readonly summary: string; readonly annotations: readonly CheckRunAnnotation[] };
}

/**
 * What the webhook handlers do in one repository, as the App's installation there (contents:
 * read, checks: write). The runtime wiring implements it over the GitHub App client (src/github/).
 */
export interface RepositoryAccess {
  /** A file or a directory listing at `ref`; undefined when there is none at that path. */
  contents(path: string, ref: string): Promise<RepositoryFile | readonly DirectoryEntry[] | undefined>;
  /** The commit a branch points at now. */
  branchHead(branch: string): Promise<string>;
  createCheckRun(checkRun: CheckRun): Promise<void>;
  /** Ends the access (revokes its installation token). */
  close(): Promise<void>;
}

export type OpenRepositoryAccess = (repository: RepositoryName) => Promise<RepositoryAccess>;
