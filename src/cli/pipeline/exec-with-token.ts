import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Environment } from './ci-token-sources.ts';

/**
 * Runs `command` with the token in its environment as `variable`, and nowhere else: no file,
 * no argument, no log. Returns the command's exit status (128 + signal number when a signal
 * ended it, 126/127 when it cannot be run, as shells do). SIGINT, SIGTERM and SIGHUP are passed on.
 */
export function execWithToken(command: readonly string[], variable: string, token: string, report: (line: string) => void): Promise<number> {
  return execWithEnvironment(command, { [variable]: token }, report);
}

/** Runs `command` with `variables` added to its environment only (cloud credentials: several at once), as execWithToken. */
export function execWithEnvironment(command: readonly string[], variables: Readonly<Record<string, string>>, report: (line: string) => void): Promise<number> {
  return execInEnvironment(command, { ...process.env, ...variables }, report);
}

/**
 * The signals that end the command rather than this process: this one waits for it, then does what it does after (revokes
 * the token, removes the credential files), which a SIGHUP (the terminal or the runner's session gone) would otherwise skip.
 */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Runs `command` with exactly `env` (what `keyway proxy` withholds is not there), as execWithToken. */
export function execInEnvironment(command: readonly string[], env: Environment, report: (line: string) => void): Promise<number> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.resolve(2);
  // Listened for before the command starts: a signal may come as soon as it has (its first output read, a terminal closed),
  // and the default action would end this process there, with nothing after the command done.
  let child: ChildProcess | undefined;
  const forward = (signal: NodeJS.Signals) => child?.kill(signal);
  const stopForwarding = () => {
    for (const signal of FORWARDED) process.off(signal, forward);
  };
  for (const signal of FORWARDED) process.on(signal, forward);
  try {
    child = spawn(file, args, { stdio: 'inherit', env: env as NodeJS.ProcessEnv });
  } catch (error) {
    stopForwarding();
    throw error;
  }
  const started = child;
  return new Promise((resolve) => {
    const done = (status: number) => {
      stopForwarding();
      resolve(status);
    };
    started.once('error', (error: NodeJS.ErrnoException) => {
      report(`cannot run ${file}: ${error.message}`);
      done(error.code === 'ENOENT' ? 127 : 126);
    });
    started.once('exit', (code, signal) => done(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}
