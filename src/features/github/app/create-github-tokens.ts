import type { Logger } from '../../../core/log.ts';
import type { SecretBox } from '../../../core/secrets/secret-box.ts';
import { GitHubClient, type GitHubHttp } from './github-client.ts';
import { GitHubTokens } from './github-tokens.ts';
import type { GitHubAppSettings } from './github-settings.ts';
import { InstallationCache } from './installation-cache.ts';
import type { RevocationStore } from './revocation-store.ts';

/** Owners whose installation ids are remembered at once. */
const INSTALLATION_CACHE_ENTRIES = 1000;

/** The GitHub side of the broker, as both runtimes build it from settings and their own stores. */
export async function createGitHubTokens(
  settings: GitHubAppSettings,
  parts: {
    readonly http: GitHubHttp;
    readonly revocations: RevocationStore;
    readonly box: SecretBox;
    readonly now: () => number;
    readonly scheduled: () => void;
    readonly log: Logger;
  },
): Promise<GitHubTokens> {
  const apps = await Promise.all(
    [settings, ...settings.extraApps].map(async (app) => {
      const client = await GitHubClient.forApp({ ...settings, ...app }, parts.http, parts.now);
      const cache = { ttlSeconds: settings.installationCacheSeconds, maxEntries: INSTALLATION_CACHE_ENTRIES };
      return { client, installations: new InstallationCache(client, cache, parts.now) };
    }),
  );
  return new GitHubTokens({
    apps,
    deployment: settings.deployment,
    log: parts.log,
    revocations: parts.revocations,
    box: parts.box,
    now: parts.now,
    scheduled: parts.scheduled,
    organizationPermissions: settings.organizationPermissions,
  });
}
