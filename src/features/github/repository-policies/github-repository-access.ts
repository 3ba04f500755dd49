import { createCheckRun, updateCheckRun } from '../app/check-run.ts';
import { getCollaboratorPermission } from '../app/collaborator-permission.ts';
import { getContents } from '../app/contents.ts';
import { repositoryPath, segment, type GitHubClient } from '../app/github-client.ts';
import { GitHubError } from '../app/github-error.ts';
import type { InstallationCache } from '../app/installation-cache.ts';
import { createInstallationToken, revokeInstallationToken } from '../app/installation-token.ts';
import * as v from 'valibot';
import { parseAnswer } from '../app/parse-answer.ts';
import type { OpenRepositoryAccess } from './repository-access.ts';

/** The GitHub App as the broker holds it (GitHubTokens): its client and the installation cache webhooks refresh. */
export interface GitHubApp {
  readonly client: GitHubClient;
  readonly installations: InstallationCache;
}

/** What the webhook handlers need in a repository, and no more. */
export const REVIEW_PERMISSIONS = { contents: 'read', checks: 'write' } as const;
/** What reading a repository's own policies needs. */
export const READ_PERMISSIONS = { contents: 'read' } as const;

const BranchAnswer = v.looseObject({ commit: v.looseObject({ sha: v.pipe(v.string(), v.regex(/^[0-9a-f]{40}$/)) }) });

/**
 * Repository access through the GitHub App: one installation token per use, limited to that
 * repository and `permissions` (the webhook handlers': contents: read and checks: write),
 * revoked when done. Every call addresses the repository by the id the token holds
 * (`/repositories/{id}`), never by name: a name can lead to another account's repository once the
 * owner is renamed or deleted and the login taken again, and any installation token may read a
 * public repository, so a call by name could read one the token was never limited to.
 */
export function repositoryAccessVia(app: GitHubApp, permissions: Readonly<Record<string, string>> = REVIEW_PERMISSIONS): OpenRepositoryAccess {
  return async (repository, id, ownerId) => {
    const { client, installations } = app;
    const installation = await installations.get(repository.owner);
    if (ownerId !== undefined && installation.ownerId !== ownerId) {
      throw new GitHubError(
        'rejected',
        `${repository.owner} is the account ${installation.ownerId ?? 'of no id'}, not ${ownerId}: it is not read under that name`,
      );
    }
    const minted = await createInstallationToken(client, {
      installationId: installation.id,
      ...(id === undefined ? { repositories: [repository.name] } : { repositories: [], repositoryIds: [id] }),
      permissions,
    });
    const { token } = minted;
    // Pinned by id, the token holds that repository alone; by name, the one of that name on the installation's account.
    const held = minted.repositories.find((one) => one.name.toLowerCase() === repository.name.toLowerCase() && (id === undefined || one.id === id));
    if (held === undefined) {
      await revokeInstallationToken(client, token).catch(() => undefined);
      throw new GitHubError('rejected', `repository ${id} is no longer named ${repository.owner}/${repository.name}: it is not read under that name`);
    }
    const where = { id: held.id };
    return {
      repository: { owner: installation.owner, name: held.name },
      contents: async (path, ref) => {
        try {
          return await getContents(client, token, { ...where, path, ...(ref === undefined ? {} : { ref }) });
        } catch (error) {
          if (error instanceof GitHubError && error.code === 'not_found') return undefined;
          throw error;
        }
      },
      branchHead: async (branch) => {
        const { body } = await client.request({
          method: 'GET',
          path: `${repositoryPath(where)}/branches/${segment(branch)}`,
          auth: { as: 'installation', token },
        });
        return parseAnswer(BranchAnswer, body, `branch ${branch}`).commit.sha;
      },
      permissionOf: (username) => getCollaboratorPermission(client, token, { ...where, username }),
      createCheckRun: async (checkRun) => (await createCheckRun(client, token, where, checkRun)).id,
      updateCheckRun: (id, update) => updateCheckRun(client, token, where, id, update),
      close: async () => {
        await revokeInstallationToken(client, token);
      },
    };
  };
}
