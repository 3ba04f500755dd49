import type { GitHubClient } from './github-client.ts';
import { findInstallation, type Installation } from './installation.ts';

export interface InstallationCachePolicy {
  readonly ttlSeconds: number;
  /** Owners remembered at most; the oldest entry goes first. */
  readonly maxEntries: number;
}

/**
 * Installation ids by owner, each kept for a bounded time. Installation webhooks (installed,
 * removed, repositories changed) call `invalidate` so a change shows at once, not after the TTL.
 */
export class InstallationCache {
  readonly #client: GitHubClient;
  readonly #policy: InstallationCachePolicy;
  readonly #now: () => number;
  readonly #entries = new Map<string, { installation: Promise<Installation>; expiresAt: number }>();

  constructor(client: GitHubClient, policy: InstallationCachePolicy, now: () => number) {
    this.#client = client;
    this.#policy = policy;
    this.#now = now;
  }

  /** The installation for `owner` (case-insensitive, as GitHub logins are). */
  async get(owner: string): Promise<Installation> {
    const key = owner.toLowerCase();
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt > this.#now()) return entry.installation;
    return this.refresh(owner);
  }

  /** Looks the owner's installation up again now. */
  async refresh(owner: string): Promise<Installation> {
    const key = owner.toLowerCase();
    const installation = findInstallation(this.#client, owner);
    this.#entries.delete(key);
    if (this.#policy.ttlSeconds > 0) {
      while (this.#entries.size >= this.#policy.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, { installation, expiresAt: this.#now() + this.#policy.ttlSeconds * 1000 });
      // A failed lookup is not remembered.
      installation.catch(() => {
        if (this.#entries.get(key)?.installation === installation) this.#entries.delete(key);
      });
    }
    return installation;
  }

  /** Forgets one owner's installation, or (no owner) every one. */
  invalidate(owner?: string): void {
    if (owner === undefined) this.#entries.clear();
    else this.#entries.delete(owner.toLowerCase());
  }
}
