import { KeywayError } from '../core/errors/keyway-error.ts';

/** One `keyway` subcommand. `run` returns the process exit code. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: readonly string[]): Promise<number>;
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
