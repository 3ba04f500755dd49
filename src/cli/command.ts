import { KeywayError } from '../core/errors/keyway-error.ts';

/** One `keyway` subcommand. `run` returns the process exit code. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: readonly string[]): Promise<number>;
}

/** A subcommand's own arguments, and the command to run that follows `--` (empty without one). */
export function splitAtCommand(argv: readonly string[]): { readonly args: string[]; readonly command: string[] } {
  const split = argv.indexOf('--');
  return split === -1 ? { args: [...argv], command: [] } : { args: argv.slice(0, split), command: argv.slice(split + 1) };
}

/** A usage or input problem: printed without a stack trace. Exit code 2 means bad usage. */
export class CliError extends KeywayError {
  override readonly name = 'CliError';
  readonly code = 'cli_input';
  readonly exitCode: number;

  constructor(message: string, exitCode = 2) {
    super(message);
    this.exitCode = exitCode;
  }
}
