import type { JWTVerifyGetKey } from 'jose';
import type { Checkpoint } from './checkpoint.ts';
import { verifyRootCheckpoint, type RootCheckpoint } from './root-checkpoint.ts';
import { verifyAuditLog, type AuditLogSource, type ChainProblem, type ChainReport } from './verify-chain.ts';

/** A sharded log as `audit verify` reads it: each chain by name, and the root checkpoints as stored. */
export interface ShardedLogSource {
  readonly chains: readonly { readonly name: string; readonly source: AuditLogSource }[];
  /** The root checkpoints' JWS, as stored: verified here with `keys`. */
  readonly roots: readonly string[];
  readonly keys: JWTVerifyGetKey;
  readonly issuer?: string;
}

export interface ShardedReport {
  readonly ok: boolean;
  /** Each chain's own report, by name. */
  readonly chains: readonly (ChainReport & { readonly shard: string })[];
  /** Root checkpoints whose signature verified. */
  readonly root_checkpoints: number;
  /** When the newest of them was signed, and how many chains it covers. */
  readonly latest_root?: { readonly time: string; readonly chains: number };
  /** The first problem: a root checkpoint's, or the first broken chain's, naming it. */
  readonly problem?: ChainProblem & { readonly shard?: string };
}

/**
 * Verifies the root checkpoints, then every chain on its own (its checkpoints, its records) held
 * to every head a root checkpoint signed for it: a chain rewritten, cut short or emptied since a
 * root checkpoint no longer passes through the head it signed, and a chain a root names that the
 * log no longer has is missing. Chains are read one after another, so memory stays constant.
 */
export async function verifyShardedAuditLog(source: ShardedLogSource): Promise<ShardedReport> {
  const roots: RootCheckpoint[] = [];
  let problem: ShardedReport['problem'];
  for (const jws of source.roots) {
    try {
      roots.push(await verifyRootCheckpoint(jws, source.keys, source.issuer));
    } catch (error) {
      problem ??= { kind: 'root_checkpoint_invalid', message: `a root checkpoint is not signed by the broker: ${(error as Error).message}` };
    }
  }
  const latest = roots.toSorted((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
  const names = new Set(source.chains.map(({ name }) => name));
  const gone = latest === undefined ? undefined : Object.keys(latest.heads).find((name) => !names.has(name));
  if (gone !== undefined && latest !== undefined) {
    problem ??= {
      kind: 'root_chain_missing',
      shard: gone,
      message: `shard ${gone} is missing: the root checkpoint signed at ${latest.time} covers it up to seq ${latest.heads[gone]?.seq}`,
    };
  }
  const chains: (ChainReport & { shard: string })[] = [];
  for (const { name, source: chain } of source.chains) {
    const witnessed = roots.flatMap((root): Checkpoint[] => {
      const head = root.heads[name];
      return head === undefined || head.seq === 0 ? [] : [{ ...head, time: root.time, jws: root.jws }];
    });
    const report = await verifyAuditLog({ ...chain, witnessed });
    chains.push({ shard: name, ...report });
    if (report.problem !== undefined) problem ??= { shard: name, ...report.problem };
  }
  return {
    ok: problem === undefined && chains.every((chain) => chain.ok),
    chains,
    root_checkpoints: roots.length,
    ...(latest === undefined ? {} : { latest_root: { time: latest.time, chains: Object.keys(latest.heads).length } }),
    ...(problem === undefined ? {} : { problem }),
  };
}
