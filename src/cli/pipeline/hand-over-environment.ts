import { execWithEnvironment } from './exec-with-token.ts';
import { addMask, appendEnvironmentFile } from './github-commands.ts';
import { EXIT } from './job-log.ts';

export interface HandOverIo {
  readonly env: NodeJS.ProcessEnv;
  readonly log: (line: string) => void;
}

/** Masks `secrets` in GitHub Actions, before they can reach the log by any path, as the clouds' own actions do. */
export function maskInActions(secrets: readonly string[], env: NodeJS.ProcessEnv): void {
  if (env['GITHUB_ACTIONS'] === 'true') for (const secret of secrets) process.stderr.write(addMask(secret));
}

/**
 * Gives cloud credentials' environment variables to whoever runs next: the `--exec` command only;
 * in GitHub Actions the job's later steps ($GITHUB_ENV); otherwise `export` lines on standard
 * output, for `eval`. Secrets must have been masked first (maskInActions).
 */
export async function handOverEnvironment(variables: readonly (readonly [string, string])[], command: readonly string[], io: HandOverIo): Promise<number> {
  if (command.length > 0) return execWithEnvironment(command, Object.fromEntries(variables), io.log);
  if (io.env['GITHUB_ACTIONS'] === 'true' && io.env['GITHUB_ENV']) {
    for (const [name, value] of variables) appendEnvironmentFile(io.env['GITHUB_ENV'], 'GITHUB_ENV', name, value);
    io.log(`set for later steps: ${variables.map(([name]) => name).join(', ')}`);
    return EXIT.ok;
  }
  process.stdout.write(variables.map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`).join(''));
  return EXIT.ok;
}
