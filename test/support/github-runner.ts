import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPOSITORY_ROOT, runProcess, writeTree, type Environment } from '../node/node-harness.ts';

/**
 * Reads a GitHub Actions environment file ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_STATE) the way
 * the runner does: `name=value` lines and `name<<DELIMITER` blocks.
 */
export function readEnvironmentFile(path: string): Record<string, string> {
  const lines = readFileSync(path, 'utf8').split('\n');
  const values: Record<string, string> = {};
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index] as string;
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc !== null) {
      const end = lines.indexOf(heredoc[2] as string, index + 1);
      if (end === -1) throw new Error(`${path}: no closing delimiter for ${heredoc[1]}`);
      values[heredoc[1] as string] = lines.slice(index + 1, end).join('\n');
      index = end;
      continue;
    }
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`${path}: unreadable line ${JSON.stringify(line)}`);
    values[line.slice(0, at)] = line.slice(at + 1);
  }
  return values;
}

/** The files a runner gives a step: empty GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STATE and GITHUB_PATH under `directory`. */
export function runnerFiles(directory: string): { GITHUB_OUTPUT: string; GITHUB_ENV: string; GITHUB_STATE: string; GITHUB_PATH: string } {
  const files = {
    GITHUB_OUTPUT: join(directory, 'output'),
    GITHUB_ENV: join(directory, 'env'),
    GITHUB_STATE: join(directory, 'state'),
    GITHUB_PATH: join(directory, 'path'),
  };
  for (const file of Object.values(files)) writeFileSync(file, '');
  return files;
}

/** Where a step finds the GitHub Actions OIDC token service and the GitHub API. */
export interface RunnerServices {
  readonly githubRequestUrl: string;
  readonly githubRequestToken: string;
  readonly githubApiUrl: string;
}

/** The committed action bundle run the way a runner runs a step: node, INPUT_* variables, the runner's files, in a fresh workspace. */
export function actionStep(services: RunnerServices, inputs: Record<string, string>, extra: Environment = {}) {
  const workspace = writeTree({});
  const files = runnerFiles(workspace);
  const env: Environment = {
    PATH: process.env['PATH'],
    HOME: workspace,
    RUNNER_TEMP: workspace,
    GITHUB_ACTIONS: 'true',
    GITHUB_API_URL: services.githubApiUrl,
    ACTIONS_ID_TOKEN_REQUEST_URL: services.githubRequestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: services.githubRequestToken,
    ...files,
    ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`INPUT_${name.toUpperCase()}`, value])),
    ...extra,
  };
  return {
    files,
    env,
    run: (step: 'main' | 'post', more: Environment = {}) =>
      runProcess(process.execPath, [join(REPOSITORY_ROOT, 'action', 'dist', `${step}.mjs`)], { env: { ...env, ...more }, cwd: workspace }),
  };
}
