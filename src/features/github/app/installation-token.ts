import * as v from 'valibot';
import { segment, type GitHubClient } from './github-client.ts';
import { GitHubError } from './github-error.ts';
import { parseAnswer } from './parse-answer.ts';
import { permissionsCovered } from '../../../core/policy/github-permissions.ts';

/** Installation token permissions: name → `read` | `write` | `admin`. */
export type GitHubPermissions = Readonly<Record<string, string>>;

export interface InstallationTokenRequest {
  readonly installationId: number;
  /** Repository names (without owner) the token is limited to. */
  readonly repositories: readonly string[];
  /** Repository ids the token is limited to instead of the names: GitHub refuses (422) an id the installation does not hold. */
  readonly repositoryIds?: readonly number[];
  readonly permissions: GitHubPermissions;
}

export interface InstallationToken {
  /** The token itself: handed to the caller once, sealed while awaiting revocation, never logged. */
  readonly token: string;
  /** When GitHub expires it (an hour after minting), ms since the epoch. */
  readonly expiresAt: number;
  readonly permissions: GitHubPermissions;
  readonly repositories: readonly { readonly id: number; readonly name: string }[];
}

const TokenAnswer = v.looseObject({
  token: v.pipe(v.string(), v.minLength(1)),
  expires_at: v.pipe(v.string(), v.isoTimestamp()),
  permissions: v.optional(v.record(v.string(), v.string()), {}),
  /** Left out by GitHub for a token of every repository of the installation (`repository_selection: all`). */
  repositories: v.optional(v.array(v.looseObject({ id: v.number(), name: v.string() }))),
  repository_selection: v.optional(v.string()),
});

/**
 * `POST /app/installations/{id}/access_tokens` with the repository and permission lists: GitHub
 * refuses (422) anything beyond the installation. The answer is checked to be no wider than asked.
 */
export async function createInstallationToken(client: GitHubClient, request: InstallationTokenRequest): Promise<InstallationToken> {
  const { body } = await client.request({
    method: 'POST',
    path: `/app/installations/${segment(request.installationId)}/access_tokens`,
    auth: { as: 'app' },
    body: {
      ...(request.repositoryIds === undefined ? { repositories: request.repositories } : { repository_ids: request.repositoryIds }),
      permissions: request.permissions,
    },
    expect: [201],
  });
  const answer = parseAnswer(TokenAnswer, body, 'installation token');
  const asked = new Set(request.repositories.map((name) => name.toLowerCase()));
  const askedIds = new Set(request.repositoryIds);
  const repositories = answer.repositories ?? [];
  // A token for some repositories names them: one that names none, or says it holds them all, holds the installation's whole.
  const unnamed =
    asked.size + askedIds.size > 0 && (repositories.length === 0 || (answer.repository_selection !== undefined && answer.repository_selection !== 'selected'));
  const wider =
    unnamed ||
    repositories.some((repository) => !asked.has(repository.name.toLowerCase()) && !askedIds.has(repository.id)) ||
    // GitHub adds metadata: read to every installation token.
    !permissionsCovered({ metadata: 'read', ...request.permissions }, answer.permissions);
  if (wider) {
    // Never hand out more than the policy granted: take it back at once.
    await revokeInstallationToken(client, answer.token).catch(() => undefined);
    throw new GitHubError(
      'malformed',
      unnamed
        ? 'GitHub did not say which repository ids the token holds, so it may hold every repository of the installation; the token was revoked'
        : 'GitHub granted more than was asked for; the token was revoked',
    );
  }
  return {
    token: answer.token,
    expiresAt: Date.parse(answer.expires_at),
    permissions: answer.permissions,
    repositories: repositories.map(({ id, name }) => ({ id, name })),
  };
}

/**
 * `DELETE /installation/token`, authenticated with the token itself. `revoked`: it was live and
 * is not any more; `already_invalid`: GitHub no longer accepted it (revoked or expired before).
 */
export async function revokeInstallationToken(client: GitHubClient, token: string): Promise<'revoked' | 'already_invalid'> {
  try {
    await client.request({ method: 'DELETE', path: '/installation/token', auth: { as: 'installation', token }, expect: [204] });
    return 'revoked';
  } catch (error) {
    if (error instanceof GitHubError && error.code === 'unauthorized') return 'already_invalid';
    throw error;
  }
}
