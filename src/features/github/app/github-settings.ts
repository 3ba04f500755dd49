import { DEFAULT_GITHUB_API_URL } from '../../../core/exchange/github-access-request.ts';
import { githubDeploymentOf } from '../../../core/claims/github-run.ts';
import { ConfigError, readInteger, type SettingsSource } from '../../../core/settings/read-settings.ts';
import { ORGANIZATION_PERMISSIONS, type PermissionLevel } from '../../../core/policy/github-permissions.ts';
import { readPermissionCeilings } from './permission-ceilings.ts';

/** The GitHub App keyway acts as. */
export interface GitHubAppSettings {
  /** The App's id (or client id): the `iss` of the App JWT. */
  readonly appId: string;
  /** The App's private key, PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as GitHub hands it out) or PKCS#8. */
  readonly privateKeyPem: string;
  /** REST API base: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server. */
  readonly apiUrl: string;
  /**
   * The GitHub deployment the App mints on (githubDeploymentOf its API URL), derived here once: the exchange, the proxy, the
   * webhooks and the policy loader all hold tokens, completions and grants to this one.
   */
  readonly deployment: string;
  /** The pool's other Apps, in order (KEYWAY_GITHUB_APP_2_ID …): tokens come from the App with the most headroom. */
  readonly extraApps: readonly GitHubAppIdentity[];
  /** How long an owner's installation id is cached. */
  readonly installationCacheSeconds: number;
  /** KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS: organization permission → the highest level any policy may grant; empty: none. */
  readonly organizationPermissions: Readonly<Record<string, PermissionLevel>>;
}

/**
 * `KEYWAY_GITHUB_APP_ID` and `KEYWAY_GITHUB_APP_PRIVATE_KEY` (both, or neither: then no GitHub
 * grants can be served), `KEYWAY_GITHUB_API_URL`, `KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS`,
 * `KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS`; and for a pool of Apps, `KEYWAY_GITHUB_APP_<n>_ID` and `…_PRIVATE_KEY` (n 2 to 9).
 */
/** The Apps of the pool after the primary: `KEYWAY_GITHUB_APP_<n>_ID` and `KEYWAY_GITHUB_APP_<n>_PRIVATE_KEY`, n from 2. */
export const MAX_GITHUB_APPS = 9;

export interface GitHubAppIdentity {
  readonly appId: string;
  readonly privateKeyPem: string;
}

const set = (value: unknown): value is string => typeof value === 'string' && value !== '';

/** One App's id and key from two settings: both, or neither (undefined). */
function readAppIdentity(env: SettingsSource, idName: string, keyName: string): GitHubAppIdentity | undefined {
  const appId = env[idName];
  const privateKey = env[keyName];
  if (!set(appId) && !set(privateKey)) return undefined;
  if (!set(appId) || !set(privateKey)) throw new ConfigError(`${idName} and ${keyName} must be set together`);
  if (!/^[A-Za-z0-9.]+$/.test(appId)) throw new ConfigError(`${idName} must be the App id or client id`);
  // Secrets pasted into one-line settings often carry literal \n.
  const privateKeyPem = privateKey.includes('\\n') ? privateKey.replaceAll('\\n', '\n') : privateKey;
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(privateKeyPem))
    throw new ConfigError(`${keyName} must be the App private key in PEM (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)`);
  return { appId, privateKeyPem };
}

/** KEYWAY_GITHUB_API_URL without its trailing slashes, else api.github.com's: the REST API of the App's GitHub deployment. */
export function readGitHubApiUrl(env: SettingsSource): string {
  const apiUrl = env['KEYWAY_GITHUB_API_URL'];
  const base = set(apiUrl) ? apiUrl.replace(/\/+$/, '') : DEFAULT_GITHUB_API_URL;
  // Not quoted: credentials or a token in the query are what a refused one may hold.
  const url = URL.canParse(base) ? new URL(base) : undefined;
  if (url === undefined || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
    throw new ConfigError('KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment');
  return base;
}

export function readGitHubAppSettings(env: SettingsSource): GitHubAppSettings | undefined {
  const primary = readAppIdentity(env, 'KEYWAY_GITHUB_APP_ID', 'KEYWAY_GITHUB_APP_PRIVATE_KEY');
  const extraApps: GitHubAppIdentity[] = [];
  for (let n = 2; n <= MAX_GITHUB_APPS; n += 1) {
    const app = readAppIdentity(env, `KEYWAY_GITHUB_APP_${n}_ID`, `KEYWAY_GITHUB_APP_${n}_PRIVATE_KEY`);
    if (app === undefined) continue;
    if (primary === undefined) throw new ConfigError(`KEYWAY_GITHUB_APP_${n}_ID needs the primary App (KEYWAY_GITHUB_APP_ID) first`);
    if ([primary, ...extraApps].some((other) => other.appId === app.appId)) throw new ConfigError(`GitHub App ${app.appId} is configured twice`);
    extraApps.push(app);
  }
  if (primary === undefined) return undefined;
  const apiUrl = readGitHubApiUrl(env);
  return {
    ...primary,
    extraApps,
    apiUrl,
    deployment: githubDeploymentOf(apiUrl),
    installationCacheSeconds: readInteger(env, 'KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS', 300, 0, 3600),
    organizationPermissions: readPermissionCeilings(env, 'KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS', ORGANIZATION_PERMISSIONS, {}),
  };
}
