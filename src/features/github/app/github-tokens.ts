import { ExchangeError } from '../../../core/errors/exchange-error.ts';
import type { GitHubTokenMinter, GitHubTokenRequest, MintedGitHubToken } from '../../../core/exchange/ports.ts';
import type { SecretBox } from '../../../core/secrets/secret-box.ts';
import { sha256Hex } from '../../../core/mint/sha256-hex.ts';
import { isOrganizationPermission, levelCovers } from '../../../core/policy/github-permissions.ts';
import type { GitHubClient } from './github-client.ts';
import { GitHubError } from './github-error.ts';
import type { InstallationCache } from './installation-cache.ts';
import { createInstallationToken, revokeInstallationToken } from './installation-token.ts';
import type { RevocationStore } from './revocation-store.ts';
import { GITHUB_TOKEN_PURPOSE } from './revoke-due-tokens.ts';

export interface GitHubTokensDeps {
  readonly client: GitHubClient;
  readonly installations: InstallationCache;
  readonly revocations: RevocationStore;
  readonly box: SecretBox;
  readonly now: () => number;
  /** Told after each new schedule entry and each run made due, so the runtime's timer or alarm can move. */
  readonly scheduled: () => void;
  /** The operator's allowlist of organization permissions (KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS): permission → highest level. */
  readonly organizationPermissions: Readonly<Record<string, string>>;
}

/**
 * Mints GitHub installation tokens for granted exchanges and schedules each one's revocation
 * at the policy TTL, the token sealed under the master key until then. A token is never handed
 * out without its revocation on record: when scheduling fails it is revoked at once.
 */
export class GitHubTokens implements GitHubTokenMinter {
  readonly #deps: GitHubTokensDeps;

  constructor(deps: GitHubTokensDeps) {
    this.#deps = deps;
  }

  get installations(): InstallationCache {
    return this.#deps.installations;
  }

  get client(): GitHubClient {
    return this.#deps.client;
  }

  get apiUrl(): string {
    return this.#deps.client.apiUrl;
  }

  /** A GitHub failure is a refusal with its reason (`github_unavailable`, `github_refused`), never a token. */
  async mint(request: GitHubTokenRequest): Promise<MintedGitHubToken> {
    try {
      return await this.#mint(request);
    } catch (error) {
      if (!(error instanceof GitHubError)) throw error;
      throw new ExchangeError(error.code === 'unavailable' ? 'github_unavailable' : 'github_refused', error.message, { cause: error });
    }
  }

  async #mint(request: GitHubTokenRequest): Promise<MintedGitHubToken> {
    const { client, revocations, box } = this.#deps;
    const forOrganization = Object.keys(request.organizationPermissions).length > 0;
    if (forOrganization) this.#checkAllowlist(request.organizationPermissions);
    const installation = await this.#deps.installations.get(request.owner);
    // A login can be renamed and registered again by someone else: organization permissions go to the account pinned by id.
    if (forOrganization && (request.ownerId === undefined || String(installation.ownerId) !== request.ownerId)) {
      throw new ExchangeError(
        'github_owner_mismatch',
        `the App's installation for ${request.owner} is on account id ${installation.ownerId ?? '(unknown)'}, not ${request.ownerId ?? '(none)'} as the policy pins`,
      );
    }
    const minted = await createInstallationToken(client, {
      installationId: installation.id,
      repositories: request.repositories,
      permissions: { ...request.permissions, ...request.organizationPermissions },
    });
    const revokeNow = async (): Promise<void> => {
      await revokeInstallationToken(client, minted.token);
      await revocations.remove(request.auditEventId);
    };
    const now = this.#deps.now();
    const revokeAt = Math.min(now + request.ttlSeconds * 1000, minted.expiresAt);
    const tokenSha256 = sha256Hex(minted.token);
    try {
      await revocations.add({
        id: request.auditEventId,
        sealedToken: await box.seal(minted.token, GITHUB_TOKEN_PURPOSE, request.auditEventId),
        tokenSha256,
        apiUrl: client.apiUrl,
        installationId: installation.id,
        revokeAt,
        githubExpiresAt: minted.expiresAt,
        repositoryId: request.repositoryId,
        runId: request.runId,
        attempts: 0,
        nextAttemptAt: revokeAt,
      });
    } catch (error) {
      await revokeInstallationToken(client, minted.token).catch(() => undefined);
      throw error;
    }
    this.#deps.scheduled();
    return {
      token: minted.token,
      tokenSha256,
      installationId: installation.id,
      repositories: minted.repositories.map((repository) => repository.name),
      permissions: Object.fromEntries(Object.entries(minted.permissions).filter(([name]) => !isOrganizationPermission(name))),
      organizationPermissions: Object.fromEntries(Object.entries(minted.permissions).filter(([name]) => isOrganizationPermission(name))),
      revokeAt,
      githubExpiresAt: minted.expiresAt,
      revokeNow,
    };
  }

  /** Refuses, before GitHub is asked, organization permissions above what the operator's allowlist allows. */
  #checkAllowlist(asked: Readonly<Record<string, string>>): void {
    const allowed = this.#deps.organizationPermissions;
    const beyond = Object.entries(asked).filter(([name, level]) => !levelCovers(allowed[name], level));
    if (beyond.length === 0) return;
    const list = Object.entries(allowed).map(([name, level]) => `${name}:${level}`);
    throw new ExchangeError(
      'github_permission_not_allowed',
      `${beyond.map(([name, level]) => `${name}:${level}`).join(' ')} is beyond KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS (${list.length === 0 ? 'none' : list.join(' ')})`,
    );
  }

  /**
   * Revokes, now rather than at their TTL, every token obtained by this CI run (GitHub's
   * `workflow_job` completed webhook names it). Returns how many were pending.
   */
  async revokeRun(repositoryId: string, runId: string): Promise<number> {
    const count = await this.#deps.revocations.dueForRun(repositoryId, runId, this.#deps.now());
    if (count > 0) this.#deps.scheduled();
    return count;
  }
}
