import { ExchangeError } from '../../../core/errors/exchange-error.ts';
import type { GitHubTokenMinter, GitHubTokenRequest, MintedGitHubToken } from '../../../core/exchange/ports.ts';
import type { SecretBox } from '../../../core/secrets/secret-box.ts';
import { sha256Hex } from '../../../core/mint/sha256-hex.ts';
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
    const installation = await this.#deps.installations.get(request.owner);
    const minted = await createInstallationToken(client, {
      installationId: installation.id,
      repositories: request.repositories,
      permissions: request.permissions,
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
      permissions: minted.permissions,
      revokeAt,
      githubExpiresAt: minted.expiresAt,
      revokeNow,
    };
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
