import { githubDeploymentOf } from '../claims/github-run.ts';
import { isPermissionLevel } from '../policy/github-permissions.ts';
import type { GitHubAccessRequest } from '../policy/decide.ts';
import { GITHUB_OWNER_PATTERN } from '../policy/schema.ts';
import type { TokenExchangeRequest } from './token-exchange-request.ts';
import { ExchangeError } from '../errors/exchange-error.ts';

const REPOSITORY_NAME = /^[A-Za-z0-9._-]{1,100}$/;

/** GitHub's REST API, unless KEYWAY_GITHUB_API_URL names a GitHub Enterprise Server's. */
export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';

/**
 * The GitHub deployment a grant that pins no `owner_id` takes its jobs' own accounts of without an App: github.com's. With one,
 * the App's (GitHubAppSettings.deployment).
 */
export const DEFAULT_GITHUB_DEPLOYMENT = githubDeploymentOf(DEFAULT_GITHUB_API_URL);

/** The web origin whose repository URLs name GitHub targets: github.com, or the GitHub Enterprise Server host. */
export function githubWebOrigin(apiUrl: string): string {
  const url = new URL(apiUrl);
  return url.hostname === 'api.github.com' ? 'https://github.com' : url.origin;
}

/**
 * A request for a GitHub installation token, in RFC 8693 terms:
 * - `resource` (repeatable): a repository's URL, `https://github.com/OWNER/REPO` (the GitHub
 *   Enterprise Server host instead of github.com); `audience` may name it as `OWNER/REPO`.
 *   None: every repository the policy grants.
 * - `scope`: space-separated `permission:level` entries, e.g. `contents:read pull_requests:write`.
 *   None: every permission the policy grants.
 */
export function parseGitHubAccessRequest(request: TokenExchangeRequest, webOrigin: string): GitHubAccessRequest {
  const repositories = request.audiences.map((target) => repositoryOf(target, webOrigin));
  let permissions: Record<string, string> | undefined;
  if (request.scopes !== undefined) {
    // A Map, not an object's properties: `__proto__` or `constructor` is a name asked for like any other, not one every object has.
    const asked = new Map<string, string>();
    for (const entry of request.scopes) {
      const [name, level, ...rest] = entry.split(':');
      if (name === undefined || level === undefined || rest.length > 0 || name === '' || !isPermissionLevel(level)) {
        throw new ExchangeError('github_permission_not_granted', `scope ${entry} is not a GitHub permission: write permission:level, e.g. contents:read`, {
          public: true,
        });
      }
      if (asked.has(name) && asked.get(name) !== level) {
        throw new ExchangeError('github_permission_not_granted', `scope names ${name} twice`, { public: true });
      }
      asked.set(name, level);
    }
    permissions = Object.fromEntries(asked);
  }
  return { repositories: repositories.length === 0 ? undefined : repositories, permissions };
}

function repositoryOf(target: string, webOrigin: string): { owner: string; name: string } {
  const refuse = (): never => {
    throw new ExchangeError('github_repository_not_granted', `the requested resource ${target} is not a repository: use resource ${webOrigin}/OWNER/REPO`, {
      public: true,
    });
  };
  let path: string;
  if (URL.canParse(target)) {
    const url = new URL(target);
    // A query or fragment, even an empty one (which URL drops), names something other than the repository.
    if (url.origin !== webOrigin || /[?#]/.test(target) || url.username !== '' || url.password !== '') return refuse();
    path = url.pathname.replace(/^\//, '').replace(/\/$/, '');
  } else {
    path = target;
  }
  const [owner, name, ...rest] = path.split('/');
  if (owner === undefined || name === undefined || rest.length > 0 || !GITHUB_OWNER_PATTERN.test(owner) || !REPOSITORY_NAME.test(name)) return refuse();
  return { owner, name };
}
