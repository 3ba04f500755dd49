import { DEFAULT_GITHUB_API_URL } from '../../../core/exchange/github-access-request.ts';
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
  /** How long an owner's installation id is cached. */
  readonly installationCacheSeconds: number;
  /** KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS: organization permission → the highest level any policy may grant; empty: none. */
  readonly organizationPermissions: Readonly<Record<string, PermissionLevel>>;
}

/**
 * `KEYWAY_GITHUB_APP_ID` and `KEYWAY_GITHUB_APP_PRIVATE_KEY` (both, or neither: then no GitHub
 * grants can be served), `KEYWAY_GITHUB_API_URL`, `KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS`,
 * `KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS`.
 */
export function readGitHubAppSettings(env: SettingsSource): GitHubAppSettings | undefined {
  const appId = env['KEYWAY_GITHUB_APP_ID'];
  const privateKey = env['KEYWAY_GITHUB_APP_PRIVATE_KEY'];
  const set = (value: unknown): value is string => typeof value === 'string' && value !== '';
  if (!set(appId) && !set(privateKey)) return undefined;
  if (!set(appId) || !set(privateKey)) throw new ConfigError('KEYWAY_GITHUB_APP_ID and KEYWAY_GITHUB_APP_PRIVATE_KEY must be set together');
  if (!/^[A-Za-z0-9.]+$/.test(appId)) throw new ConfigError('KEYWAY_GITHUB_APP_ID must be the App id or client id');
  // Secrets pasted into one-line settings often carry literal \n.
  const privateKeyPem = privateKey.includes('\\n') ? privateKey.replaceAll('\\n', '\n') : privateKey;
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(privateKeyPem))
    throw new ConfigError('KEYWAY_GITHUB_APP_PRIVATE_KEY must be the App private key in PEM (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)');
  const apiUrl = env['KEYWAY_GITHUB_API_URL'];
  const base = set(apiUrl) ? apiUrl.replace(/\/+$/, '') : DEFAULT_GITHUB_API_URL;
  if (!URL.canParse(base) || new URL(base).search !== '' || new URL(base).hash !== '')
    throw new ConfigError(`KEYWAY_GITHUB_API_URL ${JSON.stringify(apiUrl)} must be a URL without query or fragment`);
  return {
    appId,
    privateKeyPem,
    apiUrl: base,
    installationCacheSeconds: readInteger(env, 'KEYWAY_GITHUB_INSTALLATION_CACHE_SECONDS', 300, 0, 3600),
    organizationPermissions: readPermissionCeilings(env, 'KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS', ORGANIZATION_PERMISSIONS, {}),
  };
}
