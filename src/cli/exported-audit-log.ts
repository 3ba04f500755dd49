import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import { readMasterKeys } from '../core/secrets/master-keys.ts';
import { SecretBox } from '../core/secrets/secret-box.ts';
import { exportedAuditLog } from '../storage/sharded-state-export.ts';
import { StateRestoreError } from '../storage/state-dump.ts';
import { CliError } from './command.ts';
import { withRecordMacs, type MasterKeyUse } from './master-key-option.ts';

/**
 * The audit log of an export saved from a Workers broker's GET /v1/backup, for `audit verify --backup`.
 * The keys it trusts: the export's keys KEYWAY_MASTER_KEY (or the master key `use` gives) vouches for, and `pinned`;
 * never one on the file's word. With `use.macs`, each chain's records are held to their MACs under that master key.
 */
export async function readExportedAuditLog(path: string, pinned?: JSONWebKeySet, use?: MasterKeyUse): Promise<AuditLogSource | ShardedLogSource> {
  const master = use?.given ?? readMasterKeys(process.env);
  const where = 'set KEYWAY_MASTER_KEY as the Worker has it';
  if (master === undefined && pinned === undefined) {
    throw new CliError(`verify --backup trusts no key on the export's word: ${where}, or pass --keys FILE, a JWKS saved earlier from GET /v1/audit/keys`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`--backup ${path}: ${(error as Error).message}`, 1);
  }
  try {
    const log = await exportedAuditLog(text, {
      ...(master === undefined ? {} : { box: await SecretBox.fromMasterKeys(master) }),
      ...(pinned === undefined ? {} : { pinned }),
    });
    return withRecordMacs(log, master, use, where);
  } catch (error) {
    if (error instanceof StateRestoreError) throw new CliError(`--backup ${path}: ${error.message}`, 1);
    throw error;
  }
}
