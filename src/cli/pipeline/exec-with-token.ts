import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Environment } from './ci-token-sources.ts';

/**
 * Runs `command` with the token in its environment as `variable`, and nowhere else: no file,
 * no argument, no log. Returns the command's exit status (128 + signal number when a signal
 * ended it, 126/127 when it cannot be run, as shells do). SIGINT and SIGTERM are passed on.
 */
export function execWithToken(command: readonly string[], variable: string, token: string, report: (line: string) => void): Promise<number> {
  return execWithEnvironment(command, { [variable]: token }, report);
}

/** Runs `command` with `variables` added to its environment only (cloud credentials: several at once), as execWithToken. */
export function execWithEnvironment(command: readonly string[], variables: Readonly<Record<string, string>>, report: (line: string) => void): Promise<number> {
  return execInEnvironment(command, { ...process.env, ...variables }, report);
}

/** Runs `command` with exactly `env` (what `keyway proxy` withholds is not there), as execWithToken. */
export function execInEnvironment(command: readonly string[], env: Environment, report: (line: string) => void): Promise<number> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.resolve(2);
  const child = spawn(file, args, { stdio: 'inherit', env: env as NodeJS.ProcessEnv });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  return new Promise((resolve) => {
    const done = (status: number) => {
      process.off('SIGINT', forward).off('SIGTERM', forward);
      resolve(status);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      report(`cannot run ${file}: ${error.message}`);
      done(error.code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => done(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}
