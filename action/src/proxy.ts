// `keyway-proxy`, which the action's proxy mode installs for later steps: `keyway proxy`, bundled.
import { CliError } from '../../src/cli/command.ts';
import { proxy } from '../../src/cli/proxy.ts';

try {
  process.exitCode = await proxy.run(process.argv.slice(2));
} catch (error) {
  const usage = error instanceof CliError || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (!usage) throw error;
  process.stderr.write(`keyway: ${(error as Error).message}\n`);
  process.exitCode = error instanceof CliError ? error.exitCode : 2;
}
