import type { JWTVerifyGetKey } from 'jose';
import type { AuditRecord } from './audit-event.ts';
import type { Checkpoint } from './checkpoint.ts';
import { lowestMacsStart } from './record-mac.ts';
import { LEGACY_CHAIN } from './sharded-audit-log.ts';
import { verifyRootCheckpoint, type RootCheckpoint } from './root-checkpoint.ts';
import { verifyAuditLog, type AuditLogSource, type ChainProblem, type ChainReport } from './verify-chain.ts';
import { withdrawnKeyUse } from './withdrawn-keys.ts';

/** A sharded log as `audit verify` reads it: each chain by name, and the root checkpoints as stored. */
export interface ShardedLogSource {
  readonly chains: readonly { readonly name: string; readonly source: AuditLogSource }[];
  /** The root checkpoints' JWS, as stored: verified here with `keys`. */
  readonly roots: readonly string[];
  /** Root checkpoints kept apart from the log (`--roots`), as given: the log must agree with each and be no older than the newest. */
  readonly kept?: readonly string[];
  readonly keys: JWTVerifyGetKey;
}

type ShardedProblem = ChainProblem & { readonly shard?: string };

export interface ShardedReport {
  readonly ok: boolean;
  /** Each chain's own report, by name; `unnamed` for a shard added since the newest root checkpoint, which none signs yet. */
  readonly chains: readonly (ChainReport & { readonly shard: string; readonly unnamed?: true })[];
  /** Root checkpoints whose signature verified. */
  readonly root_checkpoints: number;
  /** Kept root checkpoints (`kept`) whose signature verified, when some were given. */
  readonly kept_root_checkpoints?: number;
  /** When the newest of them (kept ones included) was signed, and how many chains it covers. */
  readonly latest_root?: { readonly time: string; readonly chains: number };
  /** The first problem: a root checkpoint's, or the first broken chain's, naming it. */
  readonly problem?: ShardedProblem;
}

/**
 * Verifies the root checkpoints (the log's and those kept apart from it), then every chain on its
 * own (its checkpoints, its records) held to every head a root checkpoint signed for it: a chain
 * rewritten, cut short or emptied since a root checkpoint no longer passes through the head it
 * signed, and a chain a root names that the log no longer has is missing. A chain the newest root
 * does not name is refused, unless it is a shard added since (an index past every one that root
 * names) whose every record is dated after the second that root was signed in: what no root signs
 * yet is then no more than what a named chain holds past its newest head. A log whose newest root
 * is older than the newest kept one was rolled back, or its newest roots taken out. With the records'
 * MACs checked, each chain is held to where MACs start as the root checkpoints sign it, beside its
 * own checkpoints. Chains are read one after another, so memory stays constant.
 */
export async function verifyShardedAuditLog(source: ShardedLogSource): Promise<ShardedReport> {
  const stored = await verifiedRoots(source.roots, source, 'root_checkpoint_invalid', 'a root checkpoint is not signed by the broker');
  const kept = await verifiedRoots(source.kept ?? [], source, 'kept_root_checkpoint_invalid', "a root checkpoint you kept is not signed by the broker's keys");
  let problem: ShardedProblem | undefined = stored.problem ?? kept.problem;
  const roots = [...stored.valid, ...kept.valid];
  const latest = newest(roots);
  const names = new Set(source.chains.map(({ name }) => name));
  const gone = latest === undefined ? undefined : Object.keys(latest.heads).find((name) => !names.has(name));
  if (gone !== undefined && latest !== undefined) {
    problem ??= {
      kind: 'root_chain_missing',
      shard: gone,
      message: `shard ${gone} is missing: the root checkpoint signed at ${latest.time} covers it up to seq ${latest.heads[gone]?.seq}`,
    };
  }
  const chains: ShardedReport['chains'][number][] = [];
  for (const { name, source: chain } of source.chains) {
    const witnessed = roots.flatMap((root): Checkpoint[] => {
      const head = root.heads[name];
      return head === undefined || head.seq === 0 ? [] : [{ ...head, time: root.time, jws: root.jws }];
    });
    const unnamed = latest !== undefined && latest.heads[name] === undefined;
    let early: AuditRecord | undefined;
    const records = unnamed
      ? watched(chain.records, (record) => {
          // The root's time is its JWS iat, in whole seconds: a record of that second may be older than the root.
          if (early === undefined && Date.parse(record.event.time) < Date.parse(latest.time) + 1000) early = record;
        })
      : chain.records;
    const macsAfter = lowestMacsAfter(roots, name);
    const report = await verifyAuditLog({ ...chain, records, witnessed, chain: name, ...(macsAfter === undefined ? {} : { witnessedMacsAfter: macsAfter }) });
    const refusal = unnamed ? unnamedProblem(name, latest, early) : undefined;
    chains.push({ shard: name, ...report, ...(refusal === undefined ? {} : { ok: false }), ...(unnamed ? { unnamed: true } : {}) });
    if (report.problem !== undefined) problem ??= { shard: name, ...report.problem };
    if (refusal !== undefined) problem ??= { shard: name, ...refusal };
  }
  problem ??= withdrawnKeyProblem(source, roots, chains);
  const latestStored = newest(stored.valid);
  const latestKept = newest(kept.valid);
  if (latestKept !== undefined && (latestStored === undefined || Date.parse(latestStored.time) < Date.parse(latestKept.time))) {
    problem ??= {
      kind: 'root_checkpoints_rolled_back',
      message:
        `the log's newest root checkpoint ${latestStored === undefined ? 'is none' : `was signed at ${latestStored.time}`}, ` +
        `but one you kept was signed at ${latestKept.time}: the log is older than your witness, or its newest root checkpoints were taken out`,
    };
  }
  return {
    ok: problem === undefined && chains.every((chain) => chain.ok),
    chains,
    root_checkpoints: stored.valid.length,
    ...(source.kept === undefined ? {} : { kept_root_checkpoints: kept.valid.length }),
    ...(latest === undefined ? {} : { latest_root: { time: latest.time, chains: Object.keys(latest.heads).length } }),
    ...(problem === undefined ? {} : { problem }),
  };
}

/**
 * A root checkpoint, or a chain's checkpoint, signed with a key after a withdrawal another chain recorded (each chain's
 * checkpoints were held to its own withdrawals as it was verified): a root is held to each chain's withdrawals as that
 * chain's checkpoints are, by the head it signs for the chain; a checkpoint to another chain's by its time alone.
 */
function withdrawnKeyProblem(source: ShardedLogSource, roots: readonly RootCheckpoint[], reports: ShardedReport['chains']): ShardedProblem | undefined {
  const all = reports.flatMap((report) => (report.withdrawn_keys ?? []).map((withdrawal) => ({ ...withdrawal, shard: report.shard })));
  for (const report of reports) {
    const own = all.filter((withdrawal) => withdrawal.shard === report.shard);
    const signed = roots.map((root) => {
      const head = root.heads[report.shard];
      return head === undefined ? { jws: root.jws } : { jws: root.jws, seq: head.seq };
    });
    const root = withdrawnKeyUse(signed, own, true);
    if (root !== undefined)
      return {
        kind: 'checkpoint_key_withdrawn',
        kid: root.kid,
        message: `a root checkpoint signed at ${root.time} is signed by key ${root.kid}, ${root.why}`,
      };
    const checkpoints = report.ok ? (source.chains.find(({ name }) => name === report.shard)?.source.checkpoints ?? []) : [];
    const chain = withdrawnKeyUse(
      checkpoints,
      all.filter((withdrawal) => withdrawal.shard !== report.shard),
      false,
    );
    if (chain !== undefined)
      return {
        kind: 'checkpoint_key_withdrawn',
        shard: report.shard,
        seq: chain.statement.seq ?? 0,
        kid: chain.kid,
        message: `the checkpoint for seq ${chain.statement.seq} is signed by key ${chain.kid} at ${chain.time}, ${chain.why}`,
      };
  }
  return undefined;
}

async function verifiedRoots(
  jwsList: readonly string[],
  source: ShardedLogSource,
  kind: 'root_checkpoint_invalid' | 'kept_root_checkpoint_invalid',
  what: string,
): Promise<{ valid: RootCheckpoint[]; problem?: ShardedProblem }> {
  const valid: RootCheckpoint[] = [];
  let problem: ShardedProblem | undefined;
  for (const jws of jwsList) {
    try {
      valid.push(await verifyRootCheckpoint(jws, source.keys));
    } catch (error) {
      problem ??= { kind, message: `${what}: ${(error as Error).message}` };
    }
  }
  return { valid, ...(problem === undefined ? {} : { problem }) };
}

function newest(roots: readonly RootCheckpoint[]): RootCheckpoint | undefined {
  return roots.toSorted((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
}

/**
 * Where MACs start in chain `name` as the root checkpoints sign it: the lowest start any of them signs. Upkeep never signs
 * a start past the one it was held to, so on a log as the broker kept it the lowest is the newest root's; a start raised
 * in the store since (its checkpoints deleted, an export edited and restored) and signed over by a later round is not.
 * A restore holds an export's shards to it too (worker-audit-log.ts).
 */
export function lowestMacsAfter(roots: readonly RootCheckpoint[], name: string): number | undefined {
  return lowestMacsStart(roots.map((root) => signedMacsStart(root, name)));
}

/**
 * Where MACs start in shard `name` as one root checkpoint signs it. A root that signs where MACs start was signed by a
 * broker that MACs every record it appends, so it signs a start no later than the head it names: 0 for a shard it names
 * empty or not at all (added since), and that head for one whose upkeep signed no start (no record came to it since the
 * upgrade). Else a shard added to an export, or one left idle, its records written after that head without the master key
 * and its stored start raised past them, would pass. The legacy chain's head is named as it is, checked by no round: its
 * own checkpoints sign its start.
 */
function signedMacsStart(root: RootCheckpoint, name: string): number | undefined {
  if (root.macs_after === undefined) return undefined;
  const head = root.heads[name]?.seq ?? 0;
  const start = root.macs_after[name];
  if (name === LEGACY_CHAIN) return head === 0 ? 0 : start;
  return Math.min(start ?? head, head);
}

/**
 * Why a chain the newest root does not name is refused: it is the legacy chain (sealed before the
 * first root, so every root names it), or a shard at or below an index that root names, or it
 * holds a record dated no later than that root, which would have named its shard.
 */
function unnamedProblem(name: string, latest: RootCheckpoint, early: AuditRecord | undefined): ChainProblem | undefined {
  const named = Object.keys(latest.heads).filter((each) => each !== 'legacy');
  const grown = name !== 'legacy' && named.every((each) => Number(each) < Number(name));
  const why = !grown
    ? name === 'legacy'
      ? 'every root checkpoint names the legacy chain when there is one'
      : `it names shards ${named.toSorted((a, b) => Number(a) - Number(b)).join(', ')}, so a shard added since comes after them`
    : early === undefined
      ? undefined
      : `record ${early.chain.seq} (${early.event.id}) is dated ${early.event.time}, no later than it: a shard added since holds only later records`;
  if (why === undefined) return undefined;
  return {
    kind: 'root_chain_unnamed',
    ...(grown && early !== undefined ? { seq: early.chain.seq, id: early.event.id } : {}),
    message: `chain ${name} is in no root checkpoint: the newest, signed at ${latest.time}, does not name it, and ${why}`,
  };
}

/** The records as they are read, each shown to `see` first. */
async function* watched(records: AsyncIterable<AuditRecord>, see: (record: AuditRecord) => void): AsyncGenerator<AuditRecord> {
  for await (const record of records) {
    see(record);
    yield record;
  }
}
