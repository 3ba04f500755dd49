import { ExchangeError } from '../../../core/errors/exchange-error.ts';
import type { RunEnd } from '../../../core/claims/github-run.ts';
import type { GitHubTokenMinter, GitHubTokenRequest, MintableRequest, MintedGitHubToken } from '../../../core/exchange/ports.ts';
import type { PendingGitHubTokens } from '../../../core/revocation/rfc7009-revoke.ts';
import type { SecretBox } from '../../../core/secrets/secret-box.ts';
import { sha256Hex } from '../../../core/mint/sha256-hex.ts';
import { isOrganizationPermission, levelCovers } from '../../../core/policy/github-permissions.ts';
import type { GitHubClient } from './github-client.ts';
import { GitHubError, isGitHubUnavailable } from './github-error.ts';
import type { InstallationCache } from './installation-cache.ts';
import { createInstallationToken, revokeInstallationToken } from './installation-token.ts';
import type { RevocationStore } from './revocation-store.ts';
import { GITHUB_TOKEN_PURPOSE, githubTokenContext } from './revoke-due-tokens.ts';
import { errorText, type Logger } from '../../../core/log.ts';

/** What a GitHub failure is for the exchange: unavailable for a while, or refused as configured. */
function refusalOf(error: GitHubError): ExchangeError {
  return new ExchangeError(isGitHubUnavailable(error) ? 'github_unavailable' : 'github_refused', error.message, { cause: error });
}

/** One GitHub App of the pool: its client (App JWT, rate limit seen) and its installation cache. */
export interface GitHubAppSlot {
  readonly client: GitHubClient;
  readonly installations: InstallationCache;
}

/** Whether a token request asks for `permission` at write (or above). */
const writes = (request: MintableRequest, permission: string): boolean => levelCovers(request.permissions[permission], 'write');

/** How long an App whose key GitHub refused (401 to its App JWT) is left out before it is tried again. */
export const KEY_REFUSED_BACKOFF_MS = 5 * 60_000;
/** How long a rate-limited App is left out when GitHub says nothing about when its window resets. */
export const RATE_LIMITED_BACKOFF_MS = 60_000;
/** The most one exchange spends going from App to App (each call has its own deadline too). */
export const MINT_DEADLINE_MS = 15_000;

export interface GitHubTokensDeps {
  /** The Apps keyway mints with, the first the primary: checks: write tokens, repository reads and check runs stay on it. */
  readonly apps: readonly GitHubAppSlot[];
  /** The deployment of the Apps' API (GitHubAppSettings.deployment). */
  readonly deployment: string;
  readonly revocations: RevocationStore;
  readonly box: SecretBox;
  readonly now: () => number;
  /** Told after each new schedule entry and each run made due, so the runtime's timer or alarm can move. */
  readonly scheduled: () => void;
  readonly log: Logger;
  /** The operator's allowlist of organization permissions (KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS): permission → highest level. */
  readonly organizationPermissions: Readonly<Record<string, string>>;
}

/**
 * Mints GitHub installation tokens for granted exchanges and schedules each one's revocation
 * at the policy TTL, the token sealed under the master key until then. A token is never handed
 * out without its revocation on record: when scheduling fails it is revoked at once.
 */
export class GitHubTokens implements GitHubTokenMinter, PendingGitHubTokens {
  readonly #deps: GitHubTokensDeps;
  /** Per App (by index): until when it is left out, and why. */
  readonly #backedOff = new Map<number, { readonly until: number; readonly why: string }>();

  constructor(deps: GitHubTokensDeps) {
    if (deps.apps.length === 0) throw new Error('GitHubTokens needs at least one App');
    this.#deps = deps;
  }

  /** The primary App's installation cache (installation webhooks refresh it). */
  get installations(): InstallationCache {
    return this.#primary.installations;
  }

  /** The primary App's client: repository reads and check runs are made as it, so one App owns what it wrote. */
  get client(): GitHubClient {
    return this.#primary.client;
  }

  get apiUrl(): string {
    return this.#primary.client.apiUrl;
  }

  get deployment(): string {
    return this.#deps.deployment;
  }

  /** Forgets `owner`'s installation in every App of the pool (an installation webhook says it changed). */
  invalidateInstallations(owner: string): void {
    for (const app of this.#deps.apps) app.installations.invalidate(owner);
  }

  /** Each App's rate limit as GitHub last reported it, for /metrics; Apps not heard from yet are left out. */
  quotas(): { readonly appId: string; readonly remaining: number }[] {
    return this.#deps.apps.flatMap((app, index) =>
      app.client.quota.remaining === undefined ? [] : [{ appId: this.#appId(index), remaining: app.client.quota.remaining }],
    );
  }

  get #primary(): GitHubAppSlot {
    return this.#deps.apps[0]!;
  }

  /**
   * Mints from the App with the most headroom by the rate limit GitHub last reported to it. A rate-limited answer
   * (403 or 429) or a refused App key leaves that App out for a while and tries the next, within MINT_DEADLINE_MS.
   * A token with `checks: write` stays on the primary App: GitHub lets only the App that created a check run update it.
   * One with `statuses: write` never comes from it while there is another App (see #primaryWithheld).
   * A GitHub failure is a refusal with its reason (`github_unavailable`, `github_refused`), never a token.
   */
  async mint(request: GitHubTokenRequest): Promise<MintedGitHubToken> {
    const started = this.#deps.now();
    let last: GitHubError | undefined;
    for (const index of this.#candidates(request)) {
      if (last !== undefined && this.#deps.now() - started > MINT_DEADLINE_MS) break;
      try {
        return await this.#mint(index, request);
      } catch (error) {
        if (!(error instanceof GitHubError)) throw error;
        if (!this.#backOff(index, error)) throw refusalOf(error);
        last = error;
      }
    }
    if (last !== undefined) throw refusalOf(last);
    throw this.#leftOut(request);
  }

  /**
   * Refuses what `mint` would refuse without asking GitHub: organization permissions beyond the operator's allowlist, or
   * every App that could mint the token left out for now. The exchange asks before it claims a single-use token.
   */
  checkMintable(request: MintableRequest): void {
    if (Object.keys(request.organizationPermissions).length > 0) this.#checkAllowlist(request.organizationPermissions);
    if (this.#candidates(request).length === 0) throw this.#leftOut(request);
  }

  /** The refusal when no App may be asked now: each left out, until when and why. */
  #leftOut(request: MintableRequest): ExchangeError {
    const withheld = this.#primaryWithheld(request);
    const waits = [...this.#backedOff]
      .filter(([index]) => !withheld || index !== 0)
      .map(([index, state]) => `App ${this.#appId(index)} ${state.why} until ${new Date(state.until).toISOString()}`);
    const which = withheld ? "every GitHub App but the primary, which writes keyway's policy reviews and so never mints statuses: write," : 'every GitHub App';
    return new ExchangeError('github_unavailable', `${which} is left out for now: ${waits.join('; ')}`);
  }

  /**
   * Whether the primary App is kept from minting this token: one with `statuses: write` (and not `checks: write`, which only
   * the primary can use) while the pool holds another App. GitHub counts a commit status as a check of the same name, made by
   * the App whose token set it: one set with the primary's token would pass for keyway's policy review where a required
   * check is pinned to that App.
   */
  #primaryWithheld(request: MintableRequest): boolean {
    return !writes(request, 'checks') && writes(request, 'statuses') && this.#deps.apps.length > 1;
  }

  /** The Apps to try, best first: the primary alone for `checks: write`, else every App not backed off (nor withheld), most headroom first. */
  #candidates(request: MintableRequest): number[] {
    if (writes(request, 'checks')) return [0];
    const now = this.#deps.now();
    const available = this.#deps.apps
      .map((_, index) => index)
      .slice(this.#primaryWithheld(request) ? 1 : 0)
      .filter((index) => (this.#backedOff.get(index)?.until ?? 0) <= now);
    // What GitHub last reported, until its window resets: an App not asked since has its whole quota again, as far as keyway knows.
    const headroom = (index: number) => {
      const { remaining, resetAt } = this.#deps.apps[index]!.client.quota;
      return remaining === undefined || (resetAt !== undefined && resetAt <= now) ? Number.POSITIVE_INFINITY : remaining;
    };
    return available.sort((a, b) => headroom(b) - headroom(a) || a - b);
  }

  /** Leaves an App out after a rate limit or a refused key; false for any other failure, which ends the attempt. */
  #backOff(index: number, error: GitHubError): boolean {
    const now = this.#deps.now();
    const quota = this.#deps.apps[index]!.client.quota;
    let until: number;
    let why: string;
    if (error.code === 'unavailable' && (error.status === 403 || error.status === 429)) {
      const retryAt = quota.retryAfterSeconds === undefined ? undefined : now + quota.retryAfterSeconds * 1000;
      until = retryAt ?? (quota.resetAt !== undefined && quota.resetAt > now ? quota.resetAt : now + RATE_LIMITED_BACKOFF_MS);
      why = 'rate limited';
    } else if (error.code === 'unauthorized') {
      until = now + KEY_REFUSED_BACKOFF_MS;
      why = 'key refused by GitHub';
    } else {
      return false;
    }
    this.#backedOff.set(index, { until, why });
    const fields = { app_id: this.#appId(index), why, until: new Date(until).toISOString(), remaining: quota.remaining, error: error.message };
    if (error.code === 'unauthorized') this.#deps.log.error('github app left out', fields);
    else this.#deps.log.warn('github app left out', fields);
    return true;
  }

  #appId(index: number): string {
    return this.#deps.apps[index]!.client.appId ?? String(index);
  }

  async #mint(index: number, request: GitHubTokenRequest): Promise<MintedGitHubToken> {
    const { revocations, box } = this.#deps;
    const { client, installations } = this.#deps.apps[index]!;
    const forOrganization = Object.keys(request.organizationPermissions).length > 0;
    if (forOrganization) this.#checkAllowlist(request.organizationPermissions);
    const installation = await installations.get(request.owner);
    // A login can be renamed and registered again by someone else: a grant pinned by id (every one with organization
    // permissions) goes to that account only, whatever part of the grant the caller asked for.
    if ((forOrganization || request.ownerId !== undefined) && (request.ownerId === undefined || String(installation.ownerId) !== request.ownerId)) {
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
      try {
        await revokeInstallationToken(client, minted.token);
      } catch (error) {
        // Not taken back now: the revocation round tries again from now, with its backoff, rather than at the TTL.
        await revocations.retry(request.revocationId, 0, this.#deps.now());
        this.#deps.scheduled();
        throw error;
      }
      await revocations.remove(request.revocationId);
    };
    const revokeAt = Math.min(request.revokeAt, minted.expiresAt);
    const tokenSha256 = sha256Hex(minted.token);
    try {
      await revocations.add({
        id: request.revocationId,
        sealedToken: await box.seal(minted.token, GITHUB_TOKEN_PURPOSE, githubTokenContext(request.revocationId, client.apiUrl)),
        tokenSha256,
        apiUrl: client.apiUrl,
        installationId: installation.id,
        revokeAt,
        githubExpiresAt: minted.expiresAt,
        repositoryId: request.repositoryId,
        runId: request.runId,
        checkRunId: request.checkRunId,
        runAttempt: request.runAttempt,
        actorJob: request.actorJob,
        attempts: 0,
        nextAttemptAt: revokeAt,
      });
    } catch (error) {
      // The store that keeps it could not: GitHub's token is taken back, and the exchange may be tried again.
      await revokeInstallationToken(client, minted.token).catch(() => undefined);
      throw new ExchangeError('github_revocation_unavailable', `the token's revocation could not be scheduled: ${errorText(error)}`, { cause: error });
    }
    this.#deps.scheduled();
    this.#backedOff.delete(index);
    const { quota } = client;
    this.#deps.log.info('github app quota', {
      app_id: this.#appId(index),
      remaining: quota.remaining,
      reset_at: quota.resetAt === undefined ? undefined : new Date(quota.resetAt).toISOString(),
    });
    return {
      appId: this.#appId(index),
      token: minted.token,
      tokenSha256,
      installationId: installation.id,
      owner: installation.owner,
      repositories: minted.repositories,
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
   * Something of this CI run ended: revokes now, rather than at their TTL, the tokens it ends. A job
   * (GitHub's `workflow_job` webhook names it, and its check run when the payload has one) ends the
   * tokens it obtained (their `check_run_id` claim) and the run's tokens obtained with no
   * `check_run_id` (older GHES), which cannot be told apart by job; the run's other jobs keep theirs.
   * An attempt of the whole run (`workflow_run`) ends every token of it, or of an earlier attempt, still pending. A token of
   * a delegated exchange ends with its actor's job as with its subject's, once. Returns how many were pending.
   */
  async revokeEndedWork(repositoryId: string, runId: string, ended: RunEnd): Promise<number> {
    const count = await this.#deps.revocations.dueForEndedWork(repositoryId, runId, ended, this.#deps.now());
    if (count > 0) this.#deps.scheduled();
    return count;
  }

  /**
   * Its holder handed the token with this SHA-256 back (`POST /revoke`): the revocation round revokes it now, at the API
   * its row keeps (the App's), rather than at its TTL. Returns the id of its grant's audit record, if it is pending.
   */
  async handBack(tokenSha256: string): Promise<string | undefined> {
    const id = await this.#deps.revocations.dueForHandBack(tokenSha256, this.#deps.now());
    if (id !== undefined) this.#deps.scheduled();
    return id;
  }
}
