import { policyLoadOptionsOf } from '../config/broker-settings.ts';
import { statSync } from 'node:fs';
import { githubDeploymentOf } from '../core/claims/github-run.ts';
import { readGitHubApiUrl } from '../features/github/app/github-settings.ts';
import { devIssuerUrl } from '../features/dev-issuer/dev-issuer.ts';
import { nodeConfigFromEnv } from '../config/node-config.ts';
import type { PolicyLoadOptions } from '../core/policy/load-policies.ts';
import { CliError } from './command.ts';

/**
 * How the policy commands load policies: with the broker's own settings from the environment
 * (KEYWAY_ISSUER, KEYWAY_MAX_TTL_SECONDS, KEYWAY_ALLOW_HTTP_LOOPBACK, KEYWAY_GITHUB_API_URL), so they judge a directory
 * as `npm start` would. `issuer: dev` policies are checked too, as if KEYWAY_DEV=1.
 */
export function policyLoadOptions(): PolicyLoadOptions {
  const config = nodeConfigFromEnv(process.env);
  return {
    ...policyLoadOptionsOf(config),
    devIssuerUrl: devIssuerUrl(config.issuer),
    // The App's deployment without its id and key, which a policy command has no use for.
    githubDeployment: githubDeploymentOf(readGitHubApiUrl(process.env)),
  };
}

/** The directory a policy command works on: its argument, else KEYWAY_POLICIES, else policies/. */
export function policyDirectory(argument: string | undefined): string {
  const dir = argument ?? (process.env['KEYWAY_POLICIES'] || 'policies');
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`${dir} is not a directory`);
  return dir;
}
