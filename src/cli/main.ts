#!/usr/bin/env node
import { KeywayError } from '../core/errors/keyway-error.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import { CliError, type Command } from './command.ts';

/** Each command loads only when it runs: `keyway exchange` in a pipeline step need not load the audit or policy tooling. */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  'dev token': () => import('./dev-token.ts').then(({ devToken }) => devToken),
  exchange: () => import('./exchange.ts').then(({ exchange }) => exchange),
  'policy check': () => import('./policy-check.ts').then(({ policyCheck }) => policyCheck),
  'policy explain': () => import('./policy-explain.ts').then(({ policyExplain }) => policyExplain),
  'policy test': () => import('./policy-test.ts').then(({ policyTest }) => policyTest),
  'policy diff': () => import('./policy-diff.ts').then(({ policyDiff }) => policyDiff),
  'audit query': () => import('./audit-query.ts').then(({ auditQuery }) => auditQuery),
  'audit export': () => import('./audit-export.ts').then(({ auditExport }) => auditExport),
  'audit stats': () => import('./audit-stats.ts').then(({ auditStats }) => auditStats),
  'audit verify': () => import('./audit-verify.ts').then(({ auditVerify }) => auditVerify),
  'audit explain': () => import('./audit-explain.ts').then(({ auditExplain }) => auditExplain),
  'keys list': () => import('./keys-list.ts').then(({ keysList }) => keysList),
  'keys rotate': () => import('./keys-rotate.ts').then(({ keysRotate }) => keysRotate),
  'keys withdraw': () => import('./keys-withdraw.ts').then(({ keysWithdraw }) => keysWithdraw),
  'keys seal': () => import('./keys-seal.ts').then(({ keysSeal }) => keysSeal),
  backup: () => import('./backup.ts').then(({ backup }) => backup),
  restore: () => import('./restore.ts').then(({ restore }) => restore),
  'cloud check': () => import('./cloud-check.ts').then(({ cloudCheck }) => cloudCheck),
  'cloud trust': () => import('./cloud-trust.ts').then(({ cloudTrust }) => cloudTrust),
  'policy who-can': () => import('./policy-who-can.ts').then(({ policyWhoCan }) => policyWhoCan),
  inventory: () => import('./inventory.ts').then(({ inventory }) => inventory),
  'policy suggest': () => import('./policy-suggest.ts').then(({ policySuggest }) => policySuggest),
  'dpop proof': () => import('./dpop-proof.ts').then(({ dpopProof }) => dpopProof),
  'keys secret': () => import('./keys-secret.ts').then(({ keysSecret }) => keysSecret),
  'tokens revoke': () => import('./tokens-revoke.ts').then(({ tokensRevoke }) => tokensRevoke),
  proxy: () => import('./proxy.ts').then(({ proxy }) => proxy),
};

/** The list of commands, each with its summary: the one place every command is loaded. */
async function usage(): Promise<string> {
  const summaries = await Promise.all(Object.entries(COMMANDS).map(async ([name, load]) => `  ${name.padEnd(16)} ${(await load()).summary}`));
  return `usage: keyway <command> [options]

commands:
${summaries.join('\n')}

Run \`keyway <command> --help\` for a command's options.`;
}

async function main(argv: readonly string[]): Promise<number> {
  const name = [argv.slice(0, 2).join(' '), argv[0] ?? ''].find((candidate) => Object.hasOwn(COMMANDS, candidate));
  if (name === undefined) {
    console.error(await usage());
    return argv.length === 0 || argv[0] === '--help' || argv[0] === 'help' ? 0 : 2;
  }
  const command = await (COMMANDS[name] as () => Promise<Command>)();
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
  // By its code, not its class: importing the class would load the policy core for every command.
  if (error instanceof KeywayError && error.code === 'policy_load_failed') {
    console.error(`keyway: the policies do not load (keyway policy check lists every finding):\n${error.message}`);
    process.exit(1);
  }
  const printable = error instanceof CliError || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (!printable && !(error instanceof ConfigError)) throw error;
  console.error(`keyway: ${(error as Error).message}`);
  process.exitCode = error instanceof CliError ? error.exitCode : 2;
}
