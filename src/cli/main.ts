#!/usr/bin/env node
import { auditExplain } from './audit-explain.ts';
import { auditExport } from './audit-export.ts';
import { auditQuery } from './audit-query.ts';
import { auditStats } from './audit-stats.ts';
import { auditVerify } from './audit-verify.ts';
import { backup } from './backup.ts';
import { cloudCheck } from './cloud-check.ts';
import { cloudTrust } from './cloud-trust.ts';
import { devToken } from './dev-token.ts';
import { dpopProof } from './dpop-proof.ts';
import { exchange } from './exchange.ts';
import { inventory } from './inventory.ts';
import { keysList } from './keys-list.ts';
import { keysRotate } from './keys-rotate.ts';
import { keysSeal } from './keys-seal.ts';
import { keysSecret } from './keys-secret.ts';
import { policyCheck } from './policy-check.ts';
import { policyDiff } from './policy-diff.ts';
import { policyExplain } from './policy-explain.ts';
import { policySuggest } from './policy-suggest.ts';
import { policyTest } from './policy-test.ts';
import { policyWhoCan } from './policy-who-can.ts';
import { proxy } from './proxy.ts';
import { restore } from './restore.ts';
import { PolicyLoadError } from '../core/policy/load-policies.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import { CliError, type Command } from './command.ts';

const COMMANDS: Readonly<Record<string, Command>> = {
  'dev token': devToken,
  exchange,
  'policy check': policyCheck,
  'policy explain': policyExplain,
  'policy test': policyTest,
  'policy diff': policyDiff,
  'audit query': auditQuery,
  'audit export': auditExport,
  'audit stats': auditStats,
  'audit verify': auditVerify,
  'audit explain': auditExplain,
  'keys list': keysList,
  'keys rotate': keysRotate,
  'keys seal': keysSeal,
  backup,
  restore,
  'cloud check': cloudCheck,
  'cloud trust': cloudTrust,
  'policy who-can': policyWhoCan,
  inventory,
  'policy suggest': policySuggest,
  'dpop proof': dpopProof,
  'keys secret': keysSecret,
  proxy,
};

const USAGE = `usage: keyway <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(16)} ${command.summary}`)
  .join('\n')}

Run \`keyway <command> --help\` for a command's options.`;

async function main(argv: readonly string[]): Promise<number> {
  const name = [argv.slice(0, 2).join(' '), argv[0] ?? ''].find((candidate) => candidate in COMMANDS);
  if (name === undefined) {
    console.error(USAGE);
    return argv.length === 0 || argv[0] === '--help' || argv[0] === 'help' ? 0 : 2;
  }
  const command = COMMANDS[name] as Command;
  const args = argv.slice(name.split(' ').length);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  return command.run(args);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof PolicyLoadError) {
    console.error(`keyway: the policies do not load (keyway policy check lists every finding):\n${error.message}`);
    process.exit(1);
  }
  const usage = error instanceof CliError || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (!usage && !(error instanceof ConfigError)) throw error;
  console.error(`keyway: ${(error as Error).message}`);
  process.exitCode = error instanceof CliError ? error.exitCode : 2;
}
