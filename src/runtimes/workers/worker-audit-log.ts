import { maintainAuditLog, retentionStart, type SignedSoFar } from '../../core/audit/maintain-audit-log.ts';
import { readAuditSettings } from '../../core/audit/audit-settings.ts';
import type { ChainHead } from '../../core/audit/checkpoint.ts';
import { signRootCheckpoint, verifyRootCheckpoint, type RootCheckpoint } from '../../core/audit/root-checkpoint.ts';
import { lowestMacsAfter, verifyShardedAuditLog } from '../../core/audit/verify-shards.ts';
import { keptRootCheckpoints } from '../../core/audit/kept-roots.ts';
import { readMasterKeys } from '../../core/secrets/master-keys.ts';
import { SecretBox } from '../../core/secrets/secret-box.ts';
import { LEGACY_CHAIN, ShardedAuditLog } from '../../core/audit/sharded-audit-log.ts';
import type { RecordsWithoutMac } from '../../core/audit/record-mac.ts';
import { auditStatementSigner, checkpointSigner, checkpointVerifier } from '../../core/audit/sign-checkpoint.ts';
import type { Logger } from '../../core/log.ts';
import { KeywayError } from '../../core/errors/keyway-error.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import { ConfigError } from '../../core/settings/read-settings.ts';
import { pruneAlertsPastRetention, type AlertObservation, type AlertStore, type ObserveOptions } from '../../features/alerts/alert-store.ts';
import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import { auditShardOf, shardOfKey } from '../../core/audit/audit-shards.ts';
import { grantingPolicies } from '../../core/audit/granting-policies.ts';
import { clientNetwork } from '../../core/limits/network-of.ts';
import type { AuditShardsApi } from '../../core/audit/audit-shards.ts';
import * as v from 'valibot';
import { exportedAuditLog, ShardedExport, shardedExportText } from '../../storage/sharded-state-export.ts';
import type { BackupApiDeps, StateRestoreResult } from '../../http/routes/backup.ts';
import { notFresh, StateRestoreError } from '../../storage/state-dump.ts';
import { chainStore, MAX_STATE_EXPORT_BYTES } from './audit-chain-object.ts';
import { auditShard, readAuditShards, type AuditShardState } from './audit-shard-state.ts';
import { MASTER_KEY_MISSING, type KeywayState } from './keyway-state.ts';
import type { WorkerEnv } from './worker-broker.ts';

export interface WorkerAuditLog {
  readonly log: ShardedAuditLog;
  readonly api: AuditShardsApi;
  /** The alert store with `observe` in the shard of the event's identity, where its history is. */
  readonly alerts: AlertStore;
  addRoot(root: RootCheckpoint): Promise<void>;
  /** Drops the root checkpoints signed before `before`, but the newest. */
  pruneRoots(before: number): Promise<void>;
  /** What the Cron rounds remember of each shard's checkpoints, kept in the state object (KeywayState), apart from the shards. */
  readonly signedHeads: {
    read(): Promise<Record<string, ChainHead>>;
    remember(heads: Readonly<Record<string, ChainHead>>): Promise<void>;
  };
  /** GET /v1/backup and POST /v1/backup/restore over the state and every shard. */
  readonly backup: Pick<BackupApiDeps, 'exportState' | 'restoreState'>;
}

/**
 * The audit log of a Workers deployment, in KEYWAY_AUDIT_SHARDS shards (AuditShardState), after
 * recording the count in KeywayState and sealing its single chain of before the shards, which
 * stays readable and verifiable as the chain `legacy` when it holds records. A count below the
 * recorded one is refused with a ConfigError: the broker does not start.
 */
export async function openWorkerAuditLog(env: WorkerEnv, state: () => DurableObjectStub<KeywayState>, alerts: AlertStore): Promise<WorkerAuditLog> {
  const count = readAuditShards(env);
  const opening = await state().openAuditShards(count);
  if (!opening.ok) {
    throw new ConfigError(
      `KEYWAY_AUDIT_SHARDS is ${count}, but the audit log has ${opening.recorded} shards: fewer would orphan the records of shards ` +
        `${count}…${opening.recorded - 1}. Set it to ${opening.recorded} or more (the count can grow, never shrink)`,
    );
  }
  const shard = (index: number) => () => auditShard(env.AUDIT, index);
  const log = new ShardedAuditLog(
    Array.from({ length: count }, (_, index) => chainStore(shard(index), String(index))),
    opening.legacy === undefined ? undefined : chainStore(state, LEGACY_CHAIN),
  );
  const api: AuditShardsApi = {
    chains: () =>
      Promise.all(
        log.chains.map(async ({ name, store }) =>
          name === 'legacy' ? { shard: name, head: await store.head() } : { shard: name, ...(await shard(Number(name))().report()) },
        ),
      ),
    roots: (after, limit) => state().rootCheckpoints(after, limit),
    latestRoot: () => state().latestRootCheckpoint(),
  };
  // Policies this isolate knows have granted before: asked of their shard once, not on every grant of a busy policy.
  const grantedBefore = new Set<string>();
  return {
    log,
    api,
    alerts: { ...alerts, observe: (event, link, options) => observeSharded(event, link, options, count, (index) => shard(index)(), grantedBefore) },
    addRoot: (root) => state().addRootCheckpoint(root),
    pruneRoots: (before) => state().pruneRootCheckpoints(before),
    signedHeads: { read: () => state().signedHeads(), remember: (heads) => state().rememberSignedHeads(heads) },
    backup: {
      exportState: async () => {
        // The root checkpoints before the shards: every head one signed, the shards read after it have reached.
        const roots = await state().allRootCheckpoints();
        const texts = await Promise.all([state().exportState(), ...Array.from({ length: count }, (_, index) => shard(index)().exportState())]);
        if (texts.some((text) => text === undefined)) return undefined;
        const [stateText, ...shardTexts] = texts as string[];
        const text = shardedExportText(stateText as string, shardTexts, roots);
        return text.length > MAX_STATE_EXPORT_BYTES ? undefined : text;
      },
      restoreState: (text, keptRoots) => restoreSharded({ text, keptRoots }, count, state, (index) => shard(index)(), env),
    },
  };
}

/** A Cron round in which upkeep failed for one or more chains (each logged): it signed no root checkpoint and pruned none. */
export class AuditShardUpkeepError extends KeywayError {
  override readonly name = 'AuditShardUpkeepError';
  readonly code = 'audit_shard_upkeep_failed';
}

/**
 * The Cron round of the sharded log: each shard's upkeep (prune past the retention, sign a
 * checkpoint of a head that moved), then the root checkpoints past the retention pruned (the
 * newest kept), and a root checkpoint over every chain's head when one moved; undefined when none
 * moved. A shard that cannot be reached, or whose records or checkpoints do not hold, is logged and
 * leaves this round without a root checkpoint, and prunes none (a root checkpoint always covers
 * every chain): the round then throws AuditShardUpkeepError, so the Cron invocation ends failed.
 */
export async function shardedAuditUpkeep(
  audit: WorkerAuditLog,
  options: { readonly env: WorkerEnv; readonly keys: KeyRing; readonly now: number; readonly log: Logger },
): Promise<RootCheckpoint | undefined> {
  const { env, keys, now, log } = options;
  const { retentionDays } = readAuditSettings(env);
  // Each shard's memory of its checkpoints outlives the round in another object: checkpoints deleted from a shard between
  // rounds fail the next round (CheckpointsRolledBackError), as on a Node broker that signed them.
  const remembered = await audit.signedHeads.read();
  // Where MACs start in each shard as the newest root signs it (0 for a shard it names empty or not at all): a restore
  // forgets the memory above, and a start raised in a shard whose checkpoints were deleted would otherwise be signed by this round.
  const latestRoot = await audit.api.latestRoot();
  const settled = await Promise.allSettled(
    audit.log.chains.map(async ({ name, store }): Promise<{ head: [string, ChainHead]; signed?: [string, ChainHead]; macsAfter?: [string, number] }> => {
      // The legacy chain is kept by KeywayState's own alarm; its head no longer moves.
      if (name === 'legacy') return { head: [name, await store.head()] };
      const memory = remembered[name];
      const signedSoFar: SignedSoFar = memory === undefined ? {} : { last: memory };
      const sign = checkpointSigner(
        env.KEYWAY_ISSUER,
        () => keys,
        () => now,
        name,
      );
      const rootStart = latestRoot === undefined ? undefined : lowestMacsAfter([latestRoot], name);
      const { macsAfter } = await maintainAuditLog(store, sign, {
        now,
        retentionDays,
        verify: checkpointVerifier(() => keys, name),
        signedSoFar,
        ...(rootStart === undefined ? {} : { macsAfter: rootStart }),
      });
      const head = await store.head();
      // An empty shard's records are all to come, each MACed: its start is 0. Signed, it makes the root one that signs where
      // MACs start even over a fresh deployment's empty shards, which one without macs_after would leave to each shard's store.
      const start = macsAfter ?? (head.seq === 0 ? 0 : undefined);
      return {
        head: [name, head],
        ...(signedSoFar.last === undefined ? {} : { signed: [name, signedSoFar.last] }),
        ...(start === undefined ? {} : { macsAfter: [name, start] }),
      };
    }),
  );
  const held = settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const signed = held.flatMap(({ signed }) => (signed === undefined ? [] : [signed]));
  if (signed.length > 0) await audit.signedHeads.remember(Object.fromEntries(signed));
  const failed = settled.flatMap((outcome, index) =>
    outcome.status === 'rejected' ? [{ chain: audit.log.chains[index]?.name, error: String(outcome.reason) }] : [],
  );
  if (failed.length > 0) {
    log.error('audit shard upkeep failed; no root checkpoint this round', { failed });
    throw new AuditShardUpkeepError(`upkeep failed for ${failed.length} of ${settled.length} audit chains; no root checkpoint this round`);
  }
  const heads = Object.fromEntries(held.map(({ head }) => head));
  const macsAfter = Object.fromEntries(held.flatMap(({ macsAfter }) => (macsAfter === undefined ? [] : [macsAfter])));
  const latest = await audit.api.latestRoot();
  const root = latest !== undefined && sameHeads(latest.heads, heads) ? undefined : await signRoot(audit, { env, keys, now, heads, macsAfter, latest });
  // The root checkpoints leave with the records they signed the heads of, else every export would carry each one ever signed.
  if (retentionDays > 0) await audit.pruneRoots(retentionStart(now, retentionDays));
  // The alerts too: they are stored in the state object, which anyone's flood of denial bursts would otherwise fill.
  await pruneAlertsPastRetention(audit.alerts, now, retentionDays);
  return root;
}

/** Signs and stores a root checkpoint of `heads` and where MACs start in each chain (`macsAfter`), dated after the `latest` one. */
async function signRoot(
  audit: WorkerAuditLog,
  options: {
    readonly env: WorkerEnv;
    readonly keys: KeyRing;
    readonly now: number;
    readonly heads: Record<string, ChainHead>;
    readonly macsAfter: Record<string, number>;
    readonly latest?: RootCheckpoint;
  },
): Promise<RootCheckpoint> {
  const { env, keys, now, heads, macsAfter, latest } = options;
  // Roots are ordered by their signed time, in whole seconds: a root signed in the same second as the
  // latest one is dated a second later, so the newest root is always the last in the list.
  const signedAt = latest === undefined ? now : Math.max(now, Date.parse(latest.time) + 1000);
  const root = await signRootCheckpoint(
    auditStatementSigner(
      env.KEYWAY_ISSUER,
      () => keys,
      () => signedAt,
    ),
    heads,
    macsAfter,
  );
  await audit.addRoot(root);
  return root;
}

function sameHeads(a: Readonly<Record<string, ChainHead>>, b: Readonly<Record<string, ChainHead>>): boolean {
  const names = Object.keys(b);
  return Object.keys(a).length === names.length && names.every((name) => a[name]?.seq === b[name]?.seq && a[name]?.hash === b[name]?.hash);
}

/**
 * Restores an export into a fresh deployment: every object must be fresh, and every object's part of
 * the export must check out (each shard's chain vouched for by the state's signing keys) before any
 * is written. An export of the single chain of before the shards restores into the state, where it
 * is the sealed legacy chain. Root checkpoints the operator kept apart from the export
 * (`keptRoots`) hold it as `keyway audit verify --roots` does: an export older than them is refused.
 */
async function restoreSharded(
  { text, keptRoots }: { readonly text: string; readonly keptRoots: string | undefined },
  count: number,
  state: () => DurableObjectStub<KeywayState>,
  shard: (index: number) => DurableObjectStub<AuditShardState>,
  env: WorkerEnv,
): Promise<StateRestoreResult> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'malformed', message: 'the export is not JSON' };
  }
  const sharded = v.safeParse(ShardedExport, json);
  if (!sharded.success && keptRoots !== undefined) {
    return { ok: false, problem: 'malformed', message: 'kept root checkpoints hold a sharded log, but the export is of the single chain of before the shards' };
  }
  let kept: string[] | undefined;
  try {
    kept = keptRoots === undefined ? undefined : keptRootCheckpoints(keptRoots);
  } catch (error) {
    return { ok: false, problem: 'malformed', message: `the kept root checkpoints: ${(error as Error).message}` };
  }
  const shards = sharded.success ? sharded.output.shards : [];
  if (shards.length > count) {
    const message = `the export holds ${shards.length} audit shards, this deployment ${count}: set KEYWAY_AUDIT_SHARDS to ${shards.length} or more first`;
    return { ok: false, problem: 'malformed', message };
  }
  const used = (await Promise.all([state().usedTables(), ...Array.from({ length: count }, (_, index) => shard(index).usedTables())])).flat();
  if (used.length > 0) return { ok: false, problem: 'not_fresh', message: notFresh([...new Set(used)]).message };
  if (!sharded.success) return state().restoreState(text);
  const signingKeys = sharded.output.state.tables.signing_keys;
  const stateText = JSON.stringify(sharded.output.state);
  const shardTexts = shards.map((dump) => JSON.stringify(dump));
  // Every object's export is checked before any is written: a refusal writes nothing anywhere.
  const restoreAll = async (write: boolean): Promise<StateRestoreResult> => {
    let records = 0;
    let checkpoints = 0;
    const withoutMac: RecordsWithoutMac[] = [];
    for (const [index, shardText] of shardTexts.entries()) {
      const restored = await shard(index).restoreState(shardText, { signingKeys, write, chain: String(index) });
      if (!restored.ok) return { ...restored, message: `audit shard ${index}: ${restored.message}` };
      records += restored.restored.records;
      checkpoints += restored.restored.checkpoints;
      withoutMac.push(...(restored.restored.records_without_mac ?? []));
    }
    const restored = await state().restoreState(stateText, { write });
    if (!restored.ok) return restored;
    withoutMac.push(...(restored.restored.records_without_mac ?? []));
    const total = { records: records + restored.restored.records, checkpoints: checkpoints + restored.restored.checkpoints };
    const unvouched = withoutMac.length === 0 ? {} : { records_without_mac: withoutMac };
    return { ok: true, restored: { ...restored.restored, ...total, shards: shards.length, ...unvouched } };
  };
  const checked = await restoreAll(false);
  if (!checked.ok) return checked;
  const roots = await checkRootCheckpoints(text, kept, env, checked.restored.records_without_mac ?? []);
  if (!Array.isArray(roots)) return roots;
  const restored = await restoreAll(true);
  if (restored.ok) await state().restoreRootCheckpoints(roots);
  return restored;
}

/**
 * The export's root checkpoints, each verified with the signing keys this deployment's master key
 * vouches for in it, and every chain of the export held to them and to the `kept` ones
 * (verifyShardedAuditLog, as `keyway audit verify --roots` holds it): a restored deployment serves
 * only root checkpoints it could have signed, and an export that holds records without one is refused.
 * The records each shard's check took as written before keyway made MACs (`withoutMac`) are held to
 * where MACs start as the roots sign it, as `keyway audit verify --macs` holds them.
 */
async function checkRootCheckpoints(
  text: string,
  kept: readonly string[] | undefined,
  env: WorkerEnv,
  withoutMac: readonly RecordsWithoutMac[],
): Promise<RootCheckpoint[] | Extract<StateRestoreResult, { ok: false }>> {
  const master = readMasterKeys(env);
  if (master === undefined) throw new ConfigError(MASTER_KEY_MISSING);
  const box = await SecretBox.fromMasterKeys(master);
  const log = await exportedAuditLog(text, { box }).catch((error: unknown) => {
    if (error instanceof StateRestoreError) return error;
    throw error;
  });
  if (log instanceof StateRestoreError) return { ok: false, problem: log.problem, message: log.message };
  if (!('chains' in log)) throw new TypeError('a sharded export reads as a sharded log');
  const { problem } = await verifyShardedAuditLog({ ...log, ...(kept === undefined ? {} : { kept }) });
  if (problem !== undefined) {
    const where = `${problem.shard === undefined ? '' : ` in shard ${problem.shard}`}${problem.seq === undefined ? '' : ` at seq ${problem.seq}`}`;
    return { ok: false, problem: 'audit_log_invalid', message: `the audit log in the export does not verify (${problem.kind}${where}): ${problem.message}` };
  }
  const roots = await Promise.all(log.roots.map((jws) => verifyRootCheckpoint(jws, log.keys)));
  const witnesses = [...roots, ...(await Promise.all((kept ?? []).map((jws) => verifyRootCheckpoint(jws, log.keys))))];
  return unsignedWithoutMac(withoutMac, witnesses) ?? roots;
}

/**
 * A record without a MAC past where MACs start as the root checkpoints sign it for its shard (the lowest any signs, as
 * verify-shards.ts takes it). A shard's check lets such records through (records_without_mac) only as the run its records
 * after its newest checkpoint open with, held to that checkpoint's start, else the one it stores: whoever edits the
 * export can take out its checkpoints and raise its stored start past records stripped of their MACs, or appended without
 * one, and the restored deployment's upkeep would sign that start. The first of the run past the roots' start is refused.
 */
function unsignedWithoutMac(
  withoutMac: readonly RecordsWithoutMac[],
  roots: readonly RootCheckpoint[],
): Extract<StateRestoreResult, { ok: false }> | undefined {
  for (const { chain, first_seq, last_seq } of withoutMac) {
    const start = lowestMacsAfter(roots, chain);
    if (start === undefined || last_seq <= start) continue;
    const message =
      `audit shard ${chain}: audit record ${Math.max(first_seq, start + 1)} in the export carries no MAC, though the root ` +
      `checkpoints sign that the broker has MACed every record of the shard after ${start}: the broker did not append it`;
    return { ok: false, problem: 'audit_log_invalid', message };
  }
  return undefined;
}

/**
 * The alert facts of one event on a sharded log. Those of its identity's history (denial bursts of
 * the identity, replays of its token, new networks, retired policies) come from its identity's
 * shard, where that history is. Those across identities come from counters each kept in the shard
 * its key hashes to: refusals per client address, and whether a policy ever granted before, so
 * they stay exact without one object every exchange waits on. A policy's first grant is a fact that
 * never becomes false again, so once an isolate has seen a policy grant it stops asking.
 */
async function observeSharded(
  event: AuditEvent,
  link: ChainLink,
  options: ObserveOptions,
  count: number,
  shard: (index: number) => DurableObjectStub<AuditShardState>,
  grantedBefore: Set<string>,
): Promise<AlertObservation> {
  const client = event.request.client_ip === undefined ? undefined : clientNetwork(event.request.client_ip);
  const refused = event.decision === 'denied' || event.decision === 'malformed';
  const granting = grantingPolicies(event);
  const unseen = granting.filter((policy) => !grantedBefore.has(policy));
  const time = Date.parse(event.time);
  const [[local, addressDenials], firsts] = await Promise.all([
    Promise.all([
      shard(auditShardOf(event, count)).observe(event, link, options),
      refused && client !== undefined ? shard(shardOfKey(`address\n${client}`, count)).countAddressRefusal(client, time, options.windowStart) : 0,
    ]),
    Promise.all(unseen.map((policy) => shard(shardOfKey(`policy\n${policy}`, count)).firstGrantBy(policy, time))),
  ]);
  for (const policy of granting) grantedBefore.add(policy);
  return { ...local, addressDenials, firstForPolicies: unseen.filter((_, index) => firsts[index] === true) };
}
