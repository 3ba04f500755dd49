import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import { readMasterKeys } from '../core/secrets/master-keys.ts';
import { SecretBox } from '../core/secrets/secret-box.ts';
import { exportedAuditLog } from '../storage/sharded-state-export.ts';
import { StateRestoreError } from '../storage/state-dump.ts';
import { CliError } from './command.ts';

/**
 * The audit log of an export saved from a Workers broker's GET /v1/backup, for `audit verify --backup`.
 * The keys it trusts: the export's keys KEYWAY_MASTER_KEY vouches for, and `pinned`; never one on the file's word.
 */
export async function readExportedAuditLog(path: string, pinned?: JSONWebKeySet): Promise<AuditLogSource | ShardedLogSource> {
  const master = readMasterKeys(process.env);
  if (master === undefined && pinned === undefined) {
    throw new CliError(
      "verify --backup trusts no key on the export's word: set KEYWAY_MASTER_KEY as the Worker has it, or pass --keys FILE, a JWKS saved earlier from GET /v1/audit/keys",
    );
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`--backup ${path}: ${(error as Error).message}`, 1);
  }
  try {
    return await exportedAuditLog(text, {
      ...(master === undefined ? {} : { box: await SecretBox.fromMasterKeys(master) }),
      ...(pinned === undefined ? {} : { pinned }),
    });
  } catch (error) {
    if (error instanceof StateRestoreError) throw new CliError(`--backup ${path}: ${error.message}`, 1);
    throw error;
  }
}
