import * as v from 'valibot';
import { repositoryPath, segment, type GitHubClient, type RepositoryLocation } from './github-client.ts';
import { parseAnswer } from './parse-answer.ts';

/** GitHub's base roles: `maintain` answers as `write`, `triage` as `read`, custom roles as the base role they extend. */
export type RepositoryRole = 'admin' | 'write' | 'read' | 'none';

const PermissionAnswer = v.looseObject({ permission: v.string() });
const ROLES: ReadonlySet<string> = new Set<RepositoryRole>(['admin', 'write', 'read', 'none']);

/**
 * `GET /repos/{owner}/{repo}/collaborators/{username}/permission` with an installation token
 * (`metadata: read`, which every installation token carries): the user's role on the repository
 * now, from every source (repository, teams, organization). A user GitHub does not know (404), or
 * a role it has not documented, is `none`.
 */
export async function getCollaboratorPermission(
  client: GitHubClient,
  token: string,
  where: RepositoryLocation & { readonly username: string },
): Promise<RepositoryRole> {
  const { status, body } = await client.request({
    method: 'GET',
    path: `${repositoryPath(where)}/collaborators/${segment(where.username)}/permission`,
    auth: { as: 'installation', token },
    expect: [200, 404],
  });
  if (status === 404) return 'none';
  const { permission } = parseAnswer(PermissionAnswer, body, `permission of ${where.username}`);
  return ROLES.has(permission) ? (permission as RepositoryRole) : 'none';
}
