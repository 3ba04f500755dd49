import type { AlertDelivery, AlertDraft, StoredAlert } from '../../features/alerts/alert.ts';
import type { RunEnd } from '../../core/claims/github-run.ts';
import type { AlertObservation, AlertStore, ObserveOptions } from '../../features/alerts/alert-store.ts';
import type { AuditEvent, AuditStore, ChainLink } from '../../core/audit/audit-event.ts';
import { readAuditSettings, type AuditSettings } from '../../core/audit/audit-settings.ts';
import type { ChainHead } from '../../core/audit/checkpoint.ts';
import { maintainAuditLog } from '../../core/audit/maintain-audit-log.ts';
import { ChainConflictError } from '../../core/audit/chain-conflict-error.ts';
import { checkpointSigner, checkpointVerifier, type CheckpointSigner, type CheckpointVerifier } from '../../core/audit/sign-checkpoint.ts';
import { rootCheckpointPosition, rootCheckpointsFrom, type RootCheckpoint } from '../../core/audit/root-checkpoint.ts';
import { LEGACY_CHAIN } from '../../core/audit/sharded-audit-log.ts';
import { AuditChainObject, chainStore, type RestoreOptions, type StateRestoreOutcome } from './audit-chain-object.ts';
import { readMasterKeys } from '../../core/secrets/master-keys.ts';
import { SecretBox } from '../../core/secrets/secret-box.ts';
import { ConfigError } from '../../core/settings/read-settings.ts';
import { durableRefusalCounts } from './durable-refusal-counts.ts';
import { SqliteAlertStore } from '../../storage/sqlite-alert-store.ts';
import { SqliteKeyStore } from '../../storage/sqlite-key-store.ts';
import { SqliteDeliveryLog } from '../../storage/sqlite-delivery-log.ts';
import { liveSetStamp, SqliteLivePolicyStore } from '../../storage/sqlite-live-policy-store.ts';
import type { PolicyFile } from '../../core/policy/load-policies.ts';
import type { PolicyReloadStatus } from '../../core/policy/policy-reload-status.ts';
import type { DeliveryLog } from '../../features/github/webhooks/delivery-log.ts';
import { KeyRing } from '../../core/mint/key-ring.ts';
import type { KeyRingPlan } from '../../core/mint/key-life-cycle.ts';
import type { KeyStore, KeyTransition, KeyWithdrawal, SigningKeyInfo, StoredSigningKey } from '../../core/mint/key-store.ts';
import { outboundHttp } from '../../core/outbound/outbound-http.ts';
import type { PendingRevocation, RevocationStore } from '../../features/github/app/revocation-store.ts';
import { revokeDueTokens } from '../../features/github/app/revoke-due-tokens.ts';
import { errorText, jsonLogger } from '../../core/log.ts';
import { readFlag } from '../../core/settings/read-settings.ts';
import { SqliteRevocationStore } from '../../storage/sqlite-revocation-store.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * The broker's state on Workers: one SQLite-backed Durable Object running the same stores as
 * the Node SQLite file (signing keys, stored alerts, the live policy set, GitHub revocations and
 * webhook deliveries, the audit shard count and root checkpoints). The audit log is in the shards
 * (AuditShardState); the chain this object held before them is sealed, kept as `legacy`.
 */
export class KeywayState extends AuditChainObject implements KeyStore, AlertStore, RevocationStore {
  readonly #alerts: SqliteAlertStore;
  #box: Promise<SecretBox> | undefined;
  #keysUpgraded: Promise<void> | undefined;
  readonly #deliveries: SqliteDeliveryLog;
  readonly #livePolicies: SqliteLivePolicyStore;
  readonly #revocations: SqliteRevocationStore;
  /** Whether this instance's appends made a round of upkeep due since the last round began. */
  #roundDue = false;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const db = this.db;
    this.#alerts = new SqliteAlertStore(db, durableRefusalCounts(ctx.storage));
    this.#deliveries = new SqliteDeliveryLog(db);
    this.#livePolicies = new SqliteLivePolicyStore(db);
    this.#revocations = new SqliteRevocationStore(db);
  }

  override async append(event: AuditEvent, chain: string): Promise<ChainLink> {
    return (await this.appendAll([event], chain))[0] as ChainLink;
  }

  override async appendAll(events: readonly AuditEvent[], chain: string): Promise<ChainLink[]> {
    // Once the shards took over, this chain is sealed: nothing is appended after its final checkpoint.
    if ((await this.ctx.storage.get<ChainHead>(LEGACY_CHAIN_SEALED)) !== undefined) throw new Error(LEGACY_SEALED_MESSAGE);
    const links = await super.appendAll(events, chain);
    // Checkpoints follow the appends: the first append after a round makes the next one due a checkpoint interval later.
    if (!this.#roundDue) {
      this.#roundDue = true;
      await this.#scheduleUpkeep(Date.now() + readAuditSettings(this.env).checkpointSeconds * 1000);
    }
    return links;
  }

  /**
   * Revokes the GitHub tokens that are due; signs a checkpoint of the head and prunes what left the retention window when a
   * round of upkeep is due; rolls up a slice of usage. Each fails on its own.
   */
  override async alarm(): Promise<void> {
    await this.#revokeDueTokens();
    await this.#upkeepRound();
    await this.rollUpUsage();
  }

  /**
   * The alarm's round of this chain's upkeep, run once it is due (#scheduleUpkeep). When it is due is kept in storage: the
   * object is evicted between rounds an hour apart, and the alarm comes sooner for its other duties (a revocation due, the
   * usage roll-up's slices every 200 ms while it catches up), which leave the round waiting. One that fails (a record
   * after the last checkpoint without the broker's MAC, the keys unreadable) is logged and tried again a minute after the
   * first failure in a row, doubling up to the rounds' own interval: a round that fails every time neither stops the ones
   * after it (pruning with them) nor runs in a loop.
   */
  async #upkeepRound(): Promise<void> {
    const stored = await this.ctx.storage.get<number>([UPKEEP_DUE_AT, UPKEEP_RETRY_AT]);
    const due = stored.get(UPKEEP_DUE_AT);
    if (due === undefined) return;
    const runAt = Math.max(due, stored.get(UPKEEP_RETRY_AT) ?? due);
    if (Date.now() < runAt) {
      await this.armAlarm(runAt);
      return;
    }
    // Appends from here on are this round's to sign no more: the first of them makes the next one due.
    this.#roundDue = false;
    const settings = readAuditSettings(this.env);
    try {
      await this.#maintainChain(settings.retentionDays);
    } catch (error) {
      const failures = ((await this.ctx.storage.get<number>(UPKEEP_FAILURES)) ?? 0) + 1;
      const retryMs = Math.min(UPKEEP_RETRY_FIRST_MS * 2 ** (failures - 1), upkeepIntervalMs(settings));
      await this.ctx.storage.put({ [UPKEEP_FAILURES]: failures, [UPKEEP_RETRY_AT]: Date.now() + retryMs });
      jsonLogger({ component: 'audit' }).error('legacy audit chain upkeep failed', { error: errorText(error), failures, retry_in_ms: retryMs });
      // The round stays due (UPKEEP_DUE_AT), its retry waited for.
      await this.armAlarm(Date.now() + retryMs);
      return;
    }
    await this.ctx.storage.delete([UPKEEP_FAILURES, UPKEEP_RETRY_AT, UPKEEP_DUE_AT]);
    await this.#keepPruning();
  }

  /** Makes a round of upkeep due at `at`, or keeps the one due sooner, and sets the alarm for it (for its retry, after a failure). */
  async #scheduleUpkeep(at: number): Promise<void> {
    const stored = await this.ctx.storage.get<number>([UPKEEP_DUE_AT, UPKEEP_RETRY_AT]);
    const due = Math.min(at, stored.get(UPKEEP_DUE_AT) ?? at);
    if (due !== stored.get(UPKEEP_DUE_AT)) await this.ctx.storage.put(UPKEEP_DUE_AT, due);
    await this.armAlarm(Math.max(due, stored.get(UPKEEP_RETRY_AT) ?? due));
  }

  /** One round of upkeep of this object's chain (maintainAuditLog), pruning past `retentionDays` (0: none). */
  async #maintainChain(retentionDays: number): Promise<void> {
    const { sign, verify } = await this.#checkpointKeys();
    await maintainAuditLog(this.chainAudit(LEGACY_CHAIN), sign, { now: Date.now(), retentionDays, verify });
  }

  /** While retention applies, the alarm keeps pruning this chain even when no exchange comes to set it. */
  async #keepPruning(): Promise<void> {
    const settings = readAuditSettings(this.env);
    if (settings.retentionDays > 0 && (await this.audit.head()).seq > 0) await this.#scheduleUpkeep(Date.now() + upkeepIntervalMs(settings));
  }

  async #checkpointKeys(): Promise<{ readonly sign: CheckpointSigner; readonly verify: CheckpointVerifier }> {
    const ring = await KeyRing.from(await (await this.#keyStore()).listKeys());
    return {
      sign: checkpointSigner(this.env.KEYWAY_ISSUER, () => ring, Date.now, LEGACY_CHAIN),
      verify: checkpointVerifier(() => ring, LEGACY_CHAIN),
    };
  }

  // Issue 15: the audit log in shards (AuditShardState); this object's chain is the sealed legacy one.

  /**
   * Records how many shards the audit log has and seals this object's own chain (the log of
   * before the shards) with a final checkpoint of its head. A count below the recorded one is
   * refused: the shards beyond it hold records no one would read or verify any more.
   */
  async openAuditShards(requested: number): Promise<AuditShardsOpening> {
    const recorded = await this.ctx.storage.get<number>(AUDIT_SHARD_COUNT);
    if (recorded !== undefined && requested < recorded) return { ok: false, recorded };
    if (recorded !== requested) await this.ctx.storage.put(AUDIT_SHARD_COUNT, requested);
    let sealed = await this.ctx.storage.get<ChainHead>(LEGACY_CHAIN_SEALED);
    if (sealed === undefined) {
      // The head is read and the seal stored with no await between them that lets an append in: append checks the seal first.
      sealed = await this.audit.head();
      await this.ctx.storage.put(LEGACY_CHAIN_SEALED, sealed);
    }
    // The final checkpoint is signed by a round of upkeep (pruning left to the alarm), held to what upkeep holds the head to:
    // records after the last checkpoint that do not carry the broker's MAC (restored, or written into this storage) are not
    // signed as its own. Such a round signs nothing and is logged, as upkeep's; the chain stays sealed, and every opening
    // (each isolate start and Cron round) tries again.
    if (sealed.seq > 0 && ((await this.audit.latestCheckpoint())?.seq ?? 0) < sealed.seq) {
      try {
        await this.#maintainChain(0);
      } catch (error) {
        if (!(error instanceof ChainConflictError)) throw error;
        jsonLogger({ component: 'audit' }).error('the final checkpoint of the sealed legacy audit chain was not signed', { error: errorText(error) });
      }
    }
    // The sealed chain is pruned by this alarm alone (the Cron round passes it over), and an alarm that ran while retention
    // was 0 set no next one: every isolate start and Cron round comes here, so retention set later finds it armed.
    await this.#keepPruning();
    return { ok: true, ...(sealed.seq === 0 ? {} : { legacy: sealed }) };
  }

  /** Stores a root checkpoint the Cron round signed over every chain's head. */
  async addRootCheckpoint(root: RootCheckpoint): Promise<void> {
    await this.ctx.storage.put(`${ROOT_CHECKPOINT_PREFIX}${rootCheckpointPosition(root)}`, root);
  }

  /** Root checkpoints after the one at `after` (rootCheckpointPosition; empty: from the first), oldest first. */
  async rootCheckpoints(after: string, limit: number): Promise<RootCheckpoint[]> {
    return [
      ...(await this.ctx.storage.list<RootCheckpoint>({ prefix: ROOT_CHECKPOINT_PREFIX, startAfter: `${ROOT_CHECKPOINT_PREFIX}${after}`, limit })).values(),
    ];
  }

  /** Every root checkpoint, oldest first: for the export. */
  async allRootCheckpoints(): Promise<RootCheckpoint[]> {
    return [...(await this.ctx.storage.list<RootCheckpoint>({ prefix: ROOT_CHECKPOINT_PREFIX })).values()];
  }

  /**
   * The root checkpoints of a restored export, verified by the caller, in place of this fresh
   * deployment's: those cover only empty chains, signed by a key the restore replaced.
   */
  async restoreRootCheckpoints(roots: readonly RootCheckpoint[]): Promise<void> {
    const fresh = [...(await this.ctx.storage.list({ prefix: ROOT_CHECKPOINT_PREFIX })).keys()];
    // Storage calls take at most 128 keys each.
    for (let start = 0; start < fresh.length; start += 128) await this.ctx.storage.delete(fresh.slice(start, start + 128));
    for (let start = 0; start < roots.length; start += 128) {
      await this.ctx.storage.put(
        Object.fromEntries(roots.slice(start, start + 128).map((root) => [`${ROOT_CHECKPOINT_PREFIX}${rootCheckpointPosition(root)}`, root])),
      );
    }
  }

  /** What the Cron rounds remember of each shard's checkpoints (SignedSoFar), by shard. */
  async signedHeads(): Promise<Record<string, ChainHead>> {
    return (await this.ctx.storage.get<Record<string, ChainHead>>(SIGNED_HEADS)) ?? {};
  }

  /** Remembers the newest checkpoint of each shard a Cron round held; never one older than remembered (rounds may overlap). */
  async rememberSignedHeads(heads: Readonly<Record<string, ChainHead>>): Promise<void> {
    const remembered = await this.signedHeads();
    const newer = Object.entries(heads).filter(([shard, head]) => head.seq > (remembered[shard]?.seq ?? 0));
    if (newer.length > 0) await this.ctx.storage.put(SIGNED_HEADS, { ...remembered, ...Object.fromEntries(newer) });
  }

  async latestRootCheckpoint(): Promise<RootCheckpoint | undefined> {
    return [...(await this.ctx.storage.list<RootCheckpoint>({ prefix: ROOT_CHECKPOINT_PREFIX, reverse: true, limit: 1 })).values()][0];
  }

  /**
   * Drops the root checkpoints signed before `before` (the start of the retention window), at most ROOT_PRUNE_BATCH a
   * round, never the newest: they sign heads of records pruned or due to be, which the newer ones' heads commit to.
   * Without it they pile up one per Cron round (some 4 KB each), and every export carries them all.
   */
  async pruneRootCheckpoints(before: number): Promise<void> {
    const [newest] = (await this.ctx.storage.list({ prefix: ROOT_CHECKPOINT_PREFIX, reverse: true, limit: 1 })).keys();
    const end = `${ROOT_CHECKPOINT_PREFIX}${rootCheckpointsFrom(before)}`;
    const stale = [...(await this.ctx.storage.list({ prefix: ROOT_CHECKPOINT_PREFIX, end, limit: ROOT_PRUNE_BATCH })).keys()].filter((key) => key !== newest);
    // Storage calls take at most 128 keys each.
    for (let start = 0; start < stale.length; start += 128) await this.ctx.storage.delete(stale.slice(start, start + 128));
  }

  /** Revokes the GitHub tokens that are due and sets the alarm for the next one. A failure here never stops audit upkeep. */
  async #revokeDueTokens(): Promise<void> {
    const log = jsonLogger({ component: 'github-revocations' });
    try {
      if ((await this.#revocations.nextAttemptAt()) !== undefined) {
        await revokeDueTokens({
          store: this.#revocations,
          box: await this.#secretBox(),
          http: outboundHttp((input, init) => fetch(input, init), readFlag(this.env, 'KEYWAY_ALLOW_HTTP_LOOPBACK')),
          now: Date.now,
          log,
        });
      }
    } catch (error) {
      log.error('github token revocation round failed', { error: errorText(error) });
    }
    const next = await this.#revocations.nextAttemptAt();
    if (next !== undefined) await this.armAlarm(Math.max(next, Date.now() + 1000));
  }

  async add(pending: PendingRevocation): Promise<void> {
    await this.#revocations.add(pending);
    await this.armAlarm(pending.nextAttemptAt);
  }

  due(now: number, limit: number): Promise<PendingRevocation[]> {
    return this.#revocations.due(now, limit);
  }

  nextAttemptAt(): Promise<number | undefined> {
    return this.#revocations.nextAttemptAt();
  }

  remove(id: string): Promise<void> {
    return this.#revocations.remove(id);
  }

  retry(id: string, attempts: number, nextAttemptAt: number): Promise<void> {
    return this.#revocations.retry(id, attempts, nextAttemptAt);
  }

  async dueForEndedWork(repositoryId: string, runId: string, ended: RunEnd, now: number): Promise<number> {
    const count = await this.#revocations.dueForEndedWork(repositoryId, runId, ended, now);
    if (count > 0) await this.armAlarm(now);
    return count;
  }

  async dueForHandBack(tokenSha256: string, now: number): Promise<string | undefined> {
    const id = await this.#revocations.dueForHandBack(tokenSha256, now);
    if (id !== undefined) await this.armAlarm(now);
    return id;
  }

  observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation> {
    return this.#alerts.observe(event, link, options);
  }

  addAlerts(drafts: readonly AlertDraft[], delivery: AlertDelivery): Promise<StoredAlert[]> {
    return this.#alerts.addAlerts(drafts, delivery);
  }

  setDelivery(id: string, delivery: AlertDelivery, attempts: number): Promise<void> {
    return this.#alerts.setDelivery(id, delivery, attempts);
  }

  alerts(limit: number): Promise<StoredAlert[]> {
    return this.#alerts.alerts(limit);
  }

  pruneAlerts(before: number, limit: number): Promise<number> {
    return this.#alerts.pruneAlerts(before, limit);
  }

  async listKeys(): Promise<StoredSigningKey[]> {
    return (await this.#keyStore()).listKeys();
  }

  async describeKeys(): Promise<SigningKeyInfo[]> {
    return new SqliteKeyStore(this.db).describeKeys();
  }

  async initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]> {
    return (await this.#keyStore()).initializeKeys(candidate);
  }

  async advanceKeys(plan: KeyRingPlan): Promise<KeyTransition[]> {
    return (await this.#keyStore()).advanceKeys(plan);
  }

  async withdrawKey(kid: string, now: number): Promise<KeyWithdrawal> {
    return (await this.#keyStore()).withdrawKey(kid, now);
  }

  async #keyStore(): Promise<SqliteKeyStore> {
    const store = new SqliteKeyStore(this.db, await this.#secretBox());
    this.#keysUpgraded ??= this.#sealKeysOnce(store);
    // A failure is not remembered: the next call tries the upgrade again.
    this.#keysUpgraded.catch(() => (this.#keysUpgraded = undefined));
    await this.#keysUpgraded;
    return store;
  }

  /**
   * The upgrade to sealed keys, once per state object: keys an earlier keyway stored in the
   * clear are sealed under the master key, and the upgrade is recorded, after which the key store
   * refuses any key in the clear. Here, unlike on Node, no operator needs to vouch for them: only
   * the Worker's own code writes this storage, so a key in it is one keyway stored.
   */
  async #sealKeysOnce(store: SqliteKeyStore): Promise<void> {
    if ((await this.ctx.storage.get<number>(KEYS_SEALED_AT)) !== undefined) return;
    const sealed = await store.sealPlaintextKeys();
    if (sealed.length > 0) jsonLogger({ component: 'signing-keys' }).warn('sealed signing keys an earlier keyway stored in the clear', { kids: sealed });
    await this.ctx.storage.put(KEYS_SEALED_AT, Date.now());
  }

  /** Private signing keys and GitHub tokens awaiting revocation are sealed under the KEYWAY_MASTER_KEY Worker secret; without it they stay shut. */
  #secretBox(): Promise<SecretBox> {
    this.#box ??= (async () => {
      const master = readMasterKeys(this.env);
      if (master === undefined) throw new ConfigError(MASTER_KEY_MISSING);
      return SecretBox.fromMasterKeys(master);
    })();
    // A failure (no secret yet) is not remembered: the next call reads the environment again.
    this.#box.catch(() => (this.#box = undefined));
    return this.#box;
  }

  // GitHub webhooks (issue 6): delivery de-duplication and the live policy set every isolate serves.

  claimDelivery(key: string, event: string, now: number): Promise<boolean> {
    return this.#deliveries.claim(key, event, now);
  }

  finishDelivery(key: string, now: number): Promise<void> {
    return this.#deliveries.finish(key, now);
  }

  releaseDelivery(key: string): Promise<void> {
    return this.#deliveries.release(key);
  }

  /**
   * The live set's stamp (`liveSetStamp`) and last switch; when the caller's stamp is not the current one, its
   * files if the master key vouches for them, or why not (`refused`), or neither when no set is stored.
   */
  async livePolicyState(knownStamp: string): Promise<LivePolicyState> {
    const lastSwitch = this.#livePolicies.lastSwitch();
    const stamp = this.#livePolicies.stamp();
    const check = stamp === knownStamp ? undefined : await this.#livePolicies.vouched(await this.#secretBox());
    return {
      stamp: check === undefined ? stamp : liveSetStamp(check.ok ? check.set : check),
      ...(check === undefined ? {} : check.ok ? { files: check.set.files } : { refused: check.why }),
      ...(lastSwitch === undefined ? {} : { lastSwitch }),
    };
  }

  /** Stores a set the caller has loaded cleanly as the live one, attested under the master key; returns its stamp. */
  async saveLivePolicySet(files: readonly PolicyFile[], source: string, now: number): Promise<string> {
    const attested = await this.#livePolicies.attest(files, await this.#secretBox());
    return liveSetStamp({ version: this.#livePolicies.save(files, source, now, attested), switchedAt: now });
  }

  recordPolicySwitch(status: PolicyReloadStatus): void {
    this.#livePolicies.recordSwitch(status);
  }

  // Issue 21: export and restore of the whole state (GET /v1/backup, POST /v1/backup/restore).

  /** Restores an export of the state (its sealed keys, its legacy chain, …) if this state is fresh and the export checks out; nothing is written otherwise. */
  async restoreState(text: string, options: RestoreOptions = {}): Promise<StateRestoreOutcome> {
    const outcome = await this.restoreFrom(text, await this.#secretBox(), { ...options, chain: LEGACY_CHAIN });
    if (outcome.ok && options.write !== false) {
      // What this object remembered of the state before is void: keys are read anew, upkeep restarts, the restored chain is the
      // sealed one, and the Cron rounds' memory of the shards (left over if they were emptied outside keyway) is forgotten: a
      // restore writes only into empty shards, and what holds the restored log to the one before is the kept root checkpoints.
      this.#keysUpgraded = undefined;
      await this.#scheduleUpkeep(Date.now() + 1000);
      await this.ctx.storage.put(LEGACY_CHAIN_SEALED, await this.audit.head());
      await this.ctx.storage.delete(SIGNED_HEADS);
    }
    return outcome;
  }
}

export interface LivePolicyState {
  /** Which save of the live set this is (`liveSetStamp`): '' when none is stored. */
  readonly stamp: string;
  readonly files?: readonly PolicyFile[];
  /** Why the stored set is not served: the master key does not vouch for it. */
  readonly refused?: string;
  readonly lastSwitch?: PolicyReloadStatus;
}

export type AuditShardsOpening = { readonly ok: true; readonly legacy?: ChainHead } | { readonly ok: false; readonly recorded: number };

/** Storage keys: the audit shard count (it may grow, never shrink), and the legacy chain's head when it was sealed. */
export const AUDIT_SHARD_COUNT = 'audit:shards';
export const LEGACY_CHAIN_SEALED = 'audit:legacy-sealed';
const LEGACY_SEALED_MESSAGE = 'the single audit chain of before the shards is sealed: appends go to the audit shards';
const ROOT_CHECKPOINT_PREFIX = 'audit:root:';
/** Root checkpoints a Cron round prunes at most: a round signs one. */
const ROOT_PRUNE_BATCH = 1000;
/** The newest checkpoint each shard's upkeep signed or found verified, by shard (SignedSoFar): apart from the shards it holds to. */
const SIGNED_HEADS = 'audit:signed-heads';

/** Storage key: when the alarm's next round of upkeep of the legacy chain is due (ms since the epoch); none: none is. */
const UPKEEP_DUE_AT = 'audit:legacy-upkeep-due-at';
/** Storage key: the alarm's upkeep rounds of the legacy chain that failed in a row (its retry backoff). */
const UPKEEP_FAILURES = 'audit:legacy-upkeep-failures';
/** Storage key: when the alarm may run a failed upkeep round of the legacy chain again (ms since the epoch). */
export const UPKEEP_RETRY_AT = 'audit:legacy-upkeep-retry-at';
const UPKEEP_RETRY_FIRST_MS = 60_000;

/** How often the alarm keeps this chain while retention applies: every checkpoint interval, at least an hour apart. */
function upkeepIntervalMs(settings: AuditSettings): number {
  return Math.max(settings.checkpointSeconds, 3600) * 1000;
}

/** Storage key recording when the state object sealed the keys an earlier keyway stored in the clear (its one-time upgrade). */
export const KEYS_SEALED_AT = 'upgrade:keys-sealed-at';

export const MASTER_KEY_MISSING =
  'KEYWAY_MASTER_KEY is not set: signing keys and GitHub tokens awaiting revocation are sealed under it. Generate one with `openssl rand -base64 32` and run `wrangler secret put KEYWAY_MASTER_KEY`';

/** The one instance every isolate talks to. */
export function keywayState(namespace: DurableObjectNamespace<KeywayState>, name = 'keyway'): DurableObjectStub<KeywayState> {
  return namespace.get(namespace.idFromName(name));
}

/**
 * The Worker-side AuditStore, AlertStore and KeyStore: RPC to the state object. A stub is an
 * I/O object of the request that made it, so each call makes its own.
 */
export function stateStores(stub: () => DurableObjectStub<KeywayState>): {
  audit: AuditStore;
  alerts: AlertStore;
  keys: KeyStore;
  revocations: RevocationStore;
  deliveries: DeliveryLog;
} {
  return {
    audit: chainStore(stub, LEGACY_CHAIN),
    alerts: {
      observe: (event, link, options) => stub().observe(event, link, options),
      addAlerts: (drafts, delivery) => stub().addAlerts(drafts, delivery),
      setDelivery: (id, delivery, attempts) => stub().setDelivery(id, delivery, attempts),
      alerts: (limit) => stub().alerts(limit),
      pruneAlerts: (before, limit) => stub().pruneAlerts(before, limit),
    },
    keys: {
      listKeys: () => stub().listKeys(),
      describeKeys: () => stub().describeKeys(),
      initializeKeys: (candidate) => stub().initializeKeys(candidate),
      advanceKeys: (plan) => stub().advanceKeys(plan),
      withdrawKey: (kid, now) => stub().withdrawKey(kid, now),
    },
    deliveries: {
      claim: (key, event, now) => stub().claimDelivery(key, event, now),
      finish: (key, now) => stub().finishDelivery(key, now),
      release: (key) => stub().releaseDelivery(key),
    },
    revocations: {
      add: (pending) => stub().add(pending),
      due: (now, limit) => stub().due(now, limit),
      nextAttemptAt: () => stub().nextAttemptAt(),
      remove: (id) => stub().remove(id),
      retry: (id, attempts, nextAttemptAt) => stub().retry(id, attempts, nextAttemptAt),
      dueForEndedWork: (repositoryId, runId, ended, now) => stub().dueForEndedWork(repositoryId, runId, ended, now),
      dueForHandBack: (tokenSha256, now) => stub().dueForHandBack(tokenSha256, now),
    },
  };
}
