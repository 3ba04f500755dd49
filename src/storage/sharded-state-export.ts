import type { JSONWebKeySet } from 'jose';
import * as v from 'valibot';
import type { RootCheckpoint } from '../core/audit/root-checkpoint.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import { trustedKeys } from './sqlite-audit-log-source.ts';
import { vouchKeys, type KeyRow } from './sqlite-key-store.ts';
import { dumpAuditLogSource, StateRestoreError, stateDumpOf, type StateDump } from './state-dump.ts';

/** An export of a sharded Workers deployment (GET /v1/backup): the state's dump, each shard's in shard order, the root checkpoints. */
const SHARDED_STATE_FORMAT = 'keyway-sharded-state';

export const ShardedExport = v.looseObject({
  format: v.literal(SHARDED_STATE_FORMAT),
  state: v.looseObject({ tables: v.looseObject({ signing_keys: v.array(v.record(v.string(), v.nullable(v.union([v.string(), v.number()])))) }) }),
  shards: v.array(v.unknown()),
  // Absent, or empty, in an export that holds no audit record yet: one that holds records is refused without them.
  root_checkpoints: v.optional(v.array(v.looseObject({ jws: v.string() }))),
});

/** The export's JSON text from each object's: the state's dump, the shards' dumps in shard order, the root checkpoints oldest first. */
export function shardedExportText(state: string, shards: readonly string[], roots: readonly RootCheckpoint[]): string {
  return `{"format":"${SHARDED_STATE_FORMAT}","state":${state},"shards":[${shards.join(',')}],"root_checkpoints":${JSON.stringify(roots)}}`;
}

/**
 * What `audit verify` reads from an export saved from GET /v1/backup: on a sharded one every chain
 * (the sealed `legacy` one when the state holds records, then each shard by index) and the root
 * checkpoints' JWS; on an export of one chain, that chain. The keys it trusts: the state's signing
 * keys the master key vouches for (`box`) and the `pinned` ones, never a key only the export carries.
 * A document that is no export is a StateRestoreError (malformed); a sharded one that holds audit
 * records without a root checkpoint is one too (audit_log_invalid): it could not be held to any.
 */
export async function exportedAuditLog(
  text: string,
  trust: { readonly box?: SecretBox; readonly pinned?: JSONWebKeySet },
): Promise<AuditLogSource | ShardedLogSource> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StateRestoreError('malformed', 'the export is not JSON');
  }
  const sharded = v.safeParse(ShardedExport, json);
  if (!sharded.success) {
    const dump = stateDumpOf(json);
    return dumpAuditLogSource(dump, await trustOf(dump, trust));
  }
  const state = stateDumpOf(sharded.output.state);
  const keys = await trustOf(state, trust);
  const shards = sharded.output.shards.map((shard, index): StateDump => {
    try {
      return stateDumpOf(shard);
    } catch (error) {
      throw new StateRestoreError('malformed', `audit shard ${index}: ${(error as Error).message}`);
    }
  });
  const legacy = (state.tables['audit_events'] ?? []).length > 0 ? [{ name: 'legacy', source: dumpAuditLogSource(state, keys) }] : [];
  const roots = sharded.output.root_checkpoints ?? [];
  // Each chain is held to the root checkpoints: without them, a shard cut short with its checkpoints would still hold.
  if (roots.length === 0 && [state, ...shards].some(holdsAuditLog)) {
    throw new StateRestoreError(
      'audit_log_invalid',
      'the export holds audit records but no root checkpoint, so a shard cut short in it could not be told: ' +
        'they were taken out of it, or it was exported before the first Cron round signed one (export it again after that round)',
    );
  }
  return {
    chains: [...legacy, ...shards.map((shard, index) => ({ name: String(index), source: dumpAuditLogSource(shard, keys) }))],
    roots: roots.map((root) => root.jws),
    keys: keys.keys,
  };
}

function holdsAuditLog(dump: StateDump): boolean {
  return (dump.tables['audit_events'] ?? []).length > 0 || (dump.tables['audit_checkpoints'] ?? []).length > 0;
}

function trustOf(dump: StateDump, trust: { readonly box?: SecretBox; readonly pinned?: JSONWebKeySet }): ReturnType<typeof trustedKeys> {
  const rows = (dump.tables['signing_keys'] ?? []) as unknown as KeyRow[];
  return trustedKeys(
    trust,
    rows.map((row) => row.kid),
    (box) => vouchKeys(rows, box),
  );
}
