import * as v from 'valibot';
import { GitHubError } from './github-error.ts';
import { segment, type GitHubClient } from './github-client.ts';
import { parseAnswer } from './parse-answer.ts';

export interface Installation {
  readonly id: number;
  /** The account it is installed on, as GitHub spells it. */
  readonly owner: string;
  /** That account's numeric id, which a rename does not change; and whether it is an organization. */
  readonly ownerId: number | undefined;
  readonly ownerType: string | undefined;
  /** What the installation allows the App: the ceiling of every token minted through it. */
  readonly permissions: Readonly<Record<string, string>>;
  readonly repositorySelection: 'all' | 'selected';
}

const InstallationAnswer = v.looseObject({
  id: v.pipe(v.number(), v.integer(), v.minValue(1)),
  account: v.looseObject({ login: v.string(), id: v.optional(v.number()), type: v.optional(v.string()) }),
  permissions: v.optional(v.record(v.string(), v.string()), {}),
  repository_selection: v.optional(v.picklist(['all', 'selected']), 'selected'),
});

/**
 * The App's installation on an account: `GET /orgs/{org}/installation`, and for a personal
 * account (a 404 there) `GET /users/{user}/installation`.
 */
export async function findInstallation(client: GitHubClient, owner: string): Promise<Installation> {
  let body: unknown;
  try {
    body = (await client.request({ method: 'GET', path: `/orgs/${segment(owner)}/installation`, auth: { as: 'app' } })).body;
  } catch (error) {
    if (!(error instanceof GitHubError && error.code === 'not_found')) throw error;
    body = (await client.request({ method: 'GET', path: `/users/${segment(owner)}/installation`, auth: { as: 'app' } })).body;
  }
  return installationOf(parseAnswer(InstallationAnswer, body, `installation for ${owner}`));
}

/** The App's installation that covers one repository: `GET /repos/{owner}/{repo}/installation` (404 when it does not). */
export async function findRepositoryInstallation(client: GitHubClient, owner: string, repo: string): Promise<Installation> {
  const { body } = await client.request({ method: 'GET', path: `/repos/${segment(owner)}/${segment(repo)}/installation`, auth: { as: 'app' } });
  return installationOf(parseAnswer(InstallationAnswer, body, `installation for ${owner}/${repo}`));
}

function installationOf(answer: v.InferOutput<typeof InstallationAnswer>): Installation {
  return {
    id: answer.id,
    owner: answer.account.login,
    ownerId: answer.account.id,
    ownerType: answer.account.type,
    permissions: answer.permissions,
    repositorySelection: answer.repository_selection,
  };
}
