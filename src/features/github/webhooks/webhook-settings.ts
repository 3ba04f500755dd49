import { ConfigError, type SettingsSource } from '../../../core/settings/read-settings.ts';

/** The GitHub webhook and the central policy repository it watches. Absent: `POST /webhooks/github` answers 404. */
export interface GitHubWebhookSettings {
  /** KEYWAY_GITHUB_WEBHOOK_SECRET: the App's webhook secret; every delivery's X-Hub-Signature-256 is checked with it. */
  readonly secret: string;
  /**
   * KEYWAY_GITHUB_POLICY_REPOSITORY: `owner/name` of the repository holding the central policies, and
   * KEYWAY_GITHUB_POLICY_REPOSITORY_ID: GitHub's numeric id of it, which is never reused: a repository
   * deleted and re-created under the same name has another. None means no review and no live set from GitHub.
   */
  readonly policyRepository: PolicyRepository | undefined;
  /** KEYWAY_GITHUB_POLICY_PATH: the policy directory in that repository, without slashes at either end. */
  readonly policyPath: string;
  /** KEYWAY_GITHUB_POLICY_BRANCH: the branch whose pushes become the live set; default: the repository's default branch. */
  readonly policyBranch: string | undefined;
  /** The other Apps of a pool: App id (KEYWAY_GITHUB_APP_<n>_ID) → its webhook secret (KEYWAY_GITHUB_APP_<n>_WEBHOOK_SECRET). */
  readonly appSecrets: Readonly<Record<string, string>>;
}

export interface PolicyRepository {
  readonly owner: string;
  readonly name: string;
  readonly id: number;
}

const REPOSITORY = /^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/;
const REPOSITORY_ID = /^[1-9][0-9]{0,15}$/;
const PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const BRANCH = /^[A-Za-z0-9._/-]{1,255}$/;
/** GitHub's own guidance is a high-entropy secret; shorter ones are refused rather than trusted. */
export const MIN_WEBHOOK_SECRET_CHARS = 20;

const text = (env: SettingsSource, name: string): string | undefined => {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  return value;
};

/** Webhook secrets of the pool's other Apps, n from 2 to 9, each beside its App id. */
function readAppSecrets(env: SettingsSource): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (let n = 2; n <= 9; n += 1) {
    const name = `KEYWAY_GITHUB_APP_${n}_WEBHOOK_SECRET`;
    const secret = text(env, name);
    if (secret === undefined) continue;
    const appId = text(env, `KEYWAY_GITHUB_APP_${n}_ID`);
    if (appId === undefined) throw new ConfigError(`${name} needs KEYWAY_GITHUB_APP_${n}_ID: a secret belongs to one App`);
    if (secret.length < MIN_WEBHOOK_SECRET_CHARS) throw new ConfigError(`${name} must be at least ${MIN_WEBHOOK_SECRET_CHARS} characters`);
    secrets[appId] = secret;
  }
  return secrets;
}

export function readGitHubWebhookSettings(env: SettingsSource): GitHubWebhookSettings | undefined {
  const secret = text(env, 'KEYWAY_GITHUB_WEBHOOK_SECRET');
  const appSecrets = readAppSecrets(env);
  const repository = text(env, 'KEYWAY_GITHUB_POLICY_REPOSITORY');
  const repositoryId = text(env, 'KEYWAY_GITHUB_POLICY_REPOSITORY_ID');
  const path = text(env, 'KEYWAY_GITHUB_POLICY_PATH') ?? 'policies';
  const branch = text(env, 'KEYWAY_GITHUB_POLICY_BRANCH');
  if (secret === undefined) {
    if (Object.keys(appSecrets).length > 0) throw new ConfigError("a pool App's webhook secret needs the primary App's, KEYWAY_GITHUB_WEBHOOK_SECRET");
    if (repository !== undefined)
      throw new ConfigError('KEYWAY_GITHUB_POLICY_REPOSITORY needs KEYWAY_GITHUB_WEBHOOK_SECRET: the policy repository is followed through webhooks');
    return undefined;
  }
  if (secret.length < MIN_WEBHOOK_SECRET_CHARS) throw new ConfigError(`KEYWAY_GITHUB_WEBHOOK_SECRET must be at least ${MIN_WEBHOOK_SECRET_CHARS} characters`);
  if (repository !== undefined && !REPOSITORY.test(repository)) throw new ConfigError('KEYWAY_GITHUB_POLICY_REPOSITORY must be owner/name');
  if (repository !== undefined && repositoryId === undefined) {
    throw new ConfigError(
      `KEYWAY_GITHUB_POLICY_REPOSITORY needs KEYWAY_GITHUB_POLICY_REPOSITORY_ID, the repository's numeric id (gh api repos/${repository} --jq .id): ` +
        'a name alone would follow a repository deleted and re-created under it',
    );
  }
  if (repositoryId !== undefined && (repository === undefined || !REPOSITORY_ID.test(repositoryId) || !Number.isSafeInteger(Number(repositoryId)))) {
    throw new ConfigError('KEYWAY_GITHUB_POLICY_REPOSITORY_ID must be the numeric id of the repository KEYWAY_GITHUB_POLICY_REPOSITORY names');
  }
  if (!PATH.test(path) || path.split('/').some((part) => part === '.' || part === '..')) {
    throw new ConfigError('KEYWAY_GITHUB_POLICY_PATH must be a relative directory like policies or config/keyway, without slashes at either end');
  }
  if (branch !== undefined && (!BRANCH.test(branch) || branch.includes('..'))) throw new ConfigError('KEYWAY_GITHUB_POLICY_BRANCH is not a branch name');
  const [owner, name] = repository?.split('/') ?? [];
  return {
    secret,
    policyRepository: owner === undefined || name === undefined ? undefined : { owner, name, id: Number(repositoryId) },
    policyPath: path,
    policyBranch: branch,
    appSecrets,
  };
}
