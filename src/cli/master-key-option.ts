import { existsSync } from 'node:fs';
import { recordMacKeys } from '../core/audit/record-mac.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import type { MasterKeys } from '../core/secrets/master-keys.ts';
import { readMasterKeyFile } from '../storage/master-key-file.ts';
import { CliError } from './command.ts';

/** `--master-key-file FILE`: the broker's master key kept in a file, as the data directory's master key file holds it. */
export function masterKeyFileOption(file: string): MasterKeys {
  if (!existsSync(file)) throw new CliError(`no master key file at ${file}`, 1);
  return readMasterKeyFile(file);
}

/** What `audit verify` was given of the master key: one from `--master-key-file`, in place of the settings, and `--macs`. */
export interface MasterKeyUse {
  readonly given?: MasterKeys;
  readonly macs: boolean;
}

/**
 * `log` with every chain's records held to their MACs under `master` (`audit verify --macs`); `log` as it is without
 * `--macs`. `where`: where the broker keeps its master key, for the refusal when none was found.
 */
export function withRecordMacs(log: AuditLogSource | ShardedLogSource, master: MasterKeys | undefined, use: MasterKeyUse | undefined, where: string) {
  if (use?.macs !== true) return log;
  if (master === undefined) throw new CliError(`--macs checks the records' MACs with the master key: ${where}, or give --master-key-file FILE`);
  const macKeys = recordMacKeys(master);
  if ('chains' in log) return { ...log, chains: log.chains.map(({ name, source }) => ({ name, source: { ...source, macKeys } })) };
  return { ...log, macKeys };
}
