import { policyLoadOptionsOf } from '../../config/broker-settings.ts';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { openUpstreams } from '../../features/proxy/upstream-credential.ts';
import { createBroker } from '../create-broker.ts';
import { outboundHttp } from '../../core/outbound/outbound-http.ts';
import { createGitHubTokens } from '../../features/github/app/create-github-tokens.ts';
import type { GitHubTokens } from '../../features/github/app/github-tokens.ts';
import { revokeDueTokens } from '../../features/github/app/revoke-due-tokens.ts';
import { SecretBox } from '../../core/secrets/secret-box.ts';
import { recordMacKeys } from '../../core/audit/record-mac.ts';
import { SqliteRevocationStore } from '../../storage/sqlite-revocation-store.ts';
import { loadNodeMasterKeys } from '../../storage/master-key-file.ts';
import { DataDirMovedError, openInDataDir, preparePrivateDataDir } from '../../storage/private-data-dir.ts';
import { RevocationTimer } from './revocation-timer.ts';
import { devIssuerUrl, DEV_ISSUER_PATH, loadDevIssuerKey } from '../../features/dev-issuer/dev-issuer.ts';
import { devIssuerRoutes } from '../../http/routes/dev-issuer.ts';
import type { JwksCache, JwksCachePolicy } from '../../core/verify/jwks-cache.ts';
import { errorText, jsonLogger, type LogFields, type Logger } from '../../core/log.ts';
import { loadPolicies, type PolicyFile, type PolicyLoadOptions } from '../../core/policy/load-policies.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import { policyHealth, type HealthReport } from '../../core/policy/policy-health.ts';
import { migrate } from '../../storage/migrate.ts';
import { maintainAuditLog, type SignedSoFar } from '../../core/audit/maintain-audit-log.ts';
import { upkeepFailureOf } from '../../core/audit/upkeep-failure.ts';
import { AuditUpkeepRounds } from './audit-upkeep-rounds.ts';
import type { UsageRollUpLimits } from '../../storage/sqlite-audit-usage.ts';
import { checkpointSigner, checkpointVerifier } from '../../core/audit/sign-checkpoint.ts';
import { PlaintextKeyError, SqliteKeyStore } from '../../storage/sqlite-key-store.ts';
import { ConfigError } from '../../core/settings/read-settings.ts';
import { keyLifeCycle, KEY_RING_REFRESH_SECONDS, KEY_RING_SERVED_MS } from '../../core/mint/key-life-cycle.ts';
import type { KeyTransition } from '../../core/mint/key-store.ts';
import { LiveKeyRing } from '../../core/mint/live-key-ring.ts';
import { SqliteDeliveryLog } from '../../storage/sqlite-delivery-log.ts';
import { SqliteLivePolicyStore } from '../../storage/sqlite-live-policy-store.ts';
import { VouchedLiveSet } from './vouched-live-set.ts';
import { STORED_LIVE_SET } from '../../core/policy/live-policy-attestation.ts';
import type { LivePolicySet } from '../../features/github/repository-policies/live-policy-set.ts';
import type { NodeBrokerConfig } from '../../config/node-config.ts';
import { GroupCommitAuditStore, STALLED_AFTER_SECONDS } from './group-commit-audit-store.ts';
import { connectSharedWriter, REJOIN_SECONDS, serveSharedWriter, sharedWriterPath } from './shared-audit-writer.ts';
import { writerThreadAlertStore, writerThreadReplayGuard } from './writer-thread-stores.ts';
import { pruneAlertsPastRetention } from '../../features/alerts/alert-store.ts';
import { revocationList } from '../../core/revocation/revocation-list.ts';
import { endedCiWork } from '../../core/replay/ended-ci-work.ts';
import { SqliteReplayGuard } from '../../storage/sqlite-replay-guard.ts';
import { readPolicyDirectory } from '../../storage/read-policy-directory.ts';
import { ReloadablePolicies, type PolicyReloadStatus } from './reloadable-policies.ts';
import { DATABASE_FILE, openSqliteFile } from '../../storage/sqlite-file.ts';
import { MemoryRateLimiter } from '../../core/limits/memory-rate-limiter.ts';
import { brokerMetrics } from '../../features/metrics/broker-metrics.ts';
import { MetricsRegistry } from '../../features/metrics/registry.ts';
import { metricsRoute } from '../../http/routes/metrics.ts';
import { FailureBackoff } from '../failure-backoff.ts';
import { staleKeyRingRefusal, withKeyRingAge } from '../stale-key-ring.ts';
import { publicAddressFetch } from './public-address-fetch.ts';
import { BrokerListener } from './broker-listener.ts';
import { RunningWork } from './running-work.ts';
import { clientAddress } from './client-address.ts';
import { hostLocalProxies, NO_TRUSTED_PROXIES } from '../../config/trusted-proxies.ts';
import type { BrokerCluster, ClusterEvent, LeaderStatus } from './broker-processes.ts';
import { NODE_JWT_CRYPTO } from './node-jwt-crypto.ts';

export interface NodeBrokerOptions {
  readonly log?: Logger;
  readonly now?: () => number;
  readonly jwksCachePolicy?: JwksCachePolicy;
  /** One of several broker processes on the data directory (KEYWAY_PROCESSES): its part. Default: the only one, so the leader. */
  readonly cluster?: BrokerCluster;
  /** How the usage roll-up is kept (batch size, the backlog a read may sum); a test's, to catch up in several slices. */
  readonly usageRollUp?: UsageRollUpLimits;
}

export interface NodeBroker {
  /** Where the server listens, e.g. http://127.0.0.1:8787. */
  readonly url: string;
  readonly config: NodeBrokerConfig;
  /** The data directory's device and inode (`dev:ino`), as pinned at start-up: the one the other broker processes must open. */
  readonly dataDirIdentity: string;
  readonly jwks: JwksCache;
  policies(): PolicySet;
  /** Loads the policy directory again; the new set serves only if it loads cleanly (SIGHUP does this). */
  reloadPolicies(): PolicyReloadStatus;
  /** Runs one round of audit log upkeep now (checkpoint, pruning), as the leader's timer does; nothing in a follower. */
  auditUpkeep(): Promise<void>;
  /**
   * One round of signing key upkeep now, as the timer does every KEY_RING_REFRESH_SECONDS:
   * the life cycle's due transitions (`rotate`: start a rotation too; the leader only), then the ring reloaded.
   */
  keyUpkeep(options?: { rotate?: boolean }): Promise<KeyTransition[]>;
  /** The GitHub App side, when configured: installation cache, per-run revocation. */
  readonly github: GitHubTokens | undefined;
  /** Revokes the GitHub tokens that are due now, as the revocation timer does (the leader's: a follower has none). */
  revokeDueGitHubTokens(): Promise<void>;
  /** Another broker process announced `event`: a push switched the live policy set, or a GitHub token revocation was scheduled. */
  heard(event: ClusterEvent): void;
  /**
   * Shuts down in order, once however often it is called: `/readyz` says not ready; after
   * `config.shutdown.drainSeconds` the listener stops accepting and every request under way is
   * answered (its audit record committed first, as always); the timers stop and the work they or
   * an answer started finishes; the audit head is signed into a checkpoint; the audit writer
   * commits what it holds and stops; the database is closed. It sets no deadline: the caller does
   * (graceful-shutdown.ts).
   */
  close(): Promise<void>;
  /** What a shutdown under way is at and still waiting on, for the log line of one that ran out of time. */
  closing(): LogFields;
  /** How long the oldest write this process's audit writer has not answered has waited, in seconds (0 when none waits). */
  auditWriterWaitingSeconds(): number;
}

export { DATABASE_FILE };

/**
 * The embedded default: one process (or one of KEYWAY_PROCESSES: runtimes/node/broker-processes.ts),
 * a SQLite file in the data directory, keys generated on first start and kept there, policies read from a directory. Throws PolicyLoadError when the
 * policies do not load, so start-up stops with file and reason.
 *
 * It listens first, so that port 0 binds a free port: an issuer URL naming port 0 (what PORT=0
 * gives without KEYWAY_ISSUER) names the port bound. Requests wait until the broker is ready.
 */
export async function startNodeBroker(config: NodeBrokerConfig, options: NodeBrokerOptions = {}): Promise<NodeBroker> {
  const listener = await BrokerListener.listen(config);
  try {
    return await startOn(listener, { ...config, issuer: onBoundPort(config.issuer, listener.port) }, options);
  } catch (error) {
    await listener.destroy();
    throw error;
  }
}

/** `http://127.0.0.1:0` bound to port 8787 is `http://127.0.0.1:8787`; an issuer naming another port stays as it is. */
function onBoundPort(issuer: string, port: number): string {
  const url = new URL(issuer);
  if (url.port !== '0') return issuer;
  url.port = String(port);
  return url.origin;
}

async function startOn(listener: BrokerListener, config: NodeBrokerConfig, options: NodeBrokerOptions): Promise<NodeBroker> {
  const log = options.log ?? jsonLogger();
  const now = options.now ?? Date.now;
  // Checkpoints, retention, the key life cycle and GitHub revocation run in one process only.
  const leader = options.cluster?.leader ?? true;
  // Every file of the data directory is opened under its real path, checked here, and only while that path still names
  // the directory checked (openInDataDir); another broker process must find the directory the leader did.
  const privateDir = preparePrivateDataDir(config.dataDir, { identity: options.cluster?.dataDir });
  const { path: dataDir, pin, tightened } = privateDir;
  for (const file of tightened) log.warn('data file was readable beyond its owner: now 0600', { path: join(dataDir, file) });

  const devUrl = config.dev ? devIssuerUrl(config.issuer) : undefined;
  const databasePath = join(dataDir, DATABASE_FILE);
  const db = await openInDataDir(
    pin,
    () => openSqliteFile(databasePath),
    (opened) => opened.close(),
  );
  migrate(db);

  const loadOptions: PolicyLoadOptions = { ...policyLoadOptionsOf(config), devIssuerUrl: devUrl };
  const load = (files: readonly PolicyFile[]): PolicySet => {
    const set = loadPolicies(files, loadOptions);
    for (const inactive of set.inactive) log.info('policy inactive', { policy: inactive.id, file: inactive.file, why: inactive.why });
    return set;
  };
  // Private signing keys and GitHub tokens awaiting revocation are sealed under the one master key, which also vouches for the live policy set.
  const masterKeys = config.masterKeys ?? (await openInDataDir(pin, () => loadNodeMasterKeys({}, dataDir, log)));
  const box = await SecretBox.fromMasterKeys(masterKeys);
  // With a policy repository, the last set pushed to it is the live one; the directory serves until the first push, or while
  // the stored set is one the master key does not vouch for.
  const livePolicyStore = config.githubWebhooks?.policyRepository === undefined ? undefined : new SqliteLivePolicyStore(db);
  const liveSet = new VouchedLiveSet(livePolicyStore, box);
  await liveSet.read();
  const policies = new ReloadablePolicies(
    () => load(liveSet.files ?? readPolicyDirectory(config.policiesDir, { served: { owners: config.policyOwners } })),
    log,
  );
  // While the stored set is refused, so is every reload: GET /v1/health stays degraded and the log says why.
  const refuseUnvouched = (refused: string): PolicyReloadStatus =>
    policies.refuse([refused], STORED_LIVE_SET, new Date(now()), 'stored live policy set not served: the master key does not vouch for it');
  const reloadPolicies = (): PolicyReloadStatus => {
    const status = policies.reload();
    return liveSet.refused === undefined ? status : refuseUnvouched(liveSet.refused);
  };
  if (liveSet.refused !== undefined) refuseUnvouched(liveSet.refused);
  const keyStore = new SqliteKeyStore(db, box);
  const live = await LiveKeyRing.open(keyStore, now()).catch((error: unknown) => {
    if (!(error instanceof PlaintextKeyError)) throw error;
    throw new ConfigError(
      `${error.message}. If it is one an earlier keyway stored, stop here and seal it once with \`keyway keys seal --data-dir ${config.dataDir}\` ` +
        '(given the master key the broker uses), then start again; if it is not, delete its row from signing_keys',
    );
  });
  const keys = () => live.ring;
  // A removed key's sealed private part is zeroed in the file (secure_delete); emptying the WAL takes it out of older frames.
  const emptyWalOfRemovedKeys = (): void => {
    if (!db.truncateWal())
      log.warn("a removed signing key's sealed private part stays in older WAL frames until they are overwritten: a reader kept the WAL from being emptied");
  };
  const registry = new MetricsRegistry();
  const peerAddress = (c: Context): string | undefined => listener.peerAddress((c.env as HttpBindings).incoming);
  // Behind trusted proxies, the client their forwarding header names: rate limits and audit records key on it.
  const trustedProxies = config.trustedProxies ?? NO_TRUSTED_PROXIES;
  const clientIp = (c: Context): string | undefined => clientAddress(peerAddress(c), c.req.header(trustedProxies.header), trustedProxies);
  const audit = new GroupCommitAuditStore(db, databasePath, {
    dataDir: pin,
    now,
    macKeys: recordMacKeys(masterKeys),
    ...(options.usageRollUp === undefined ? {} : { usage: options.usageRollUp }),
    // Nothing is lost (the frames stay in the durable WAL) and the writer's own checkpoints carry on; logged once per failing spell.
    onWalCheckpointFailure: (error) => log.warn('WAL checkpoint failed: the audit writer checkpoints by itself meanwhile', { error }),
    onUsageRollUpFailure: (failure) =>
      log.error('usage roll-up failed: the audit writer tries it again later', { error: failure.usageRollUpFailed, retry_in_ms: failure.retryInMs }),
  });
  // Several processes: the leader's writer commits for all of them; a follower writes for itself while no leader listens.
  const sharedPath = options.cluster === undefined ? undefined : sharedWriterPath(dataDir);
  const sharedWriter =
    leader && sharedPath !== undefined
      ? await openInDataDir(
          pin,
          () => serveSharedWriter(sharedPath, (request) => audit.serveShared(request), log),
          (server) => server?.close(),
        )
      : undefined;
  // Said once per spell without a leader: joins are tried again on its announcement and every REJOIN_SECONDS, one at a
  // time, and not once the shutdown began.
  let alone = false;
  let joinsStopped = false;
  let joining: Promise<void> | undefined;
  const joinSharedWriter = (): Promise<void> => {
    joining ??= joinOnce().finally(() => {
      joining = undefined;
    });
    return joining;
  };
  const joinOnce = async (): Promise<void> => {
    if (leader || sharedPath === undefined || audit.shared || joinsStopped) return;
    let joined: boolean;
    try {
      joined = await audit.useSharedWriter((onReply, onClose) =>
        openInDataDir(
          pin,
          () =>
            connectSharedWriter(sharedPath, onReply, () => {
              // Not when this process closed it itself.
              if (audit.shared) log.warn("the leader's audit writer went away: this process writes for itself until a leader listens again");
              alone = true;
              onClose();
            }),
          (connection) => connection?.close(),
        ),
      );
    } catch (error) {
      if (!(error instanceof DataDirMovedError)) throw error;
      // Its own writer thread refuses the moved directory too: no token is issued until it is put back.
      log.error("not joining the leader's audit writer", { error: error.message });
      return;
    }
    if (joinsStopped) return;
    if (joined) log.info("audit log written through the leader's writer");
    else if (!alone) log.warn("no leader's audit writer to join: this process writes for itself until a leader listens", { path: sharedPath });
    alone = !joined;
  };
  if (options.cluster !== undefined && sharedPath === undefined) {
    log.info('the broker processes write the audit log each for itself: the data directory has no path for a socket', { data_dir: dataDir });
  }
  await joinSharedWriter();
  // An announcement this process did not hear (it was starting again itself) must not leave it writing alone for good.
  const rejoin = leader || sharedPath === undefined ? undefined : setInterval(() => void joinSharedWriter(), REJOIN_SECONDS * 1000);
  rejoin?.unref();
  const work = new RunningWork();
  const revocations = new SqliteRevocationStore(db);
  let revocationTimer: RevocationTimer | undefined;
  let github: GitHubTokens | undefined;
  // Every outbound connection is checked against the addresses its name resolves to, as it is made.
  const connect = publicAddressFetch(config.allowHttpLoopback);
  if (config.github !== undefined) {
    const http = outboundHttp(connect, config.allowHttpLoopback);
    const timer = leader
      ? new RevocationTimer(
          () => revokeDueTokens({ store: revocations, box, http, now, log }),
          () => revocations.nextAttemptAt(),
          now,
          log,
        )
      : undefined;
    const scheduled = timer === undefined ? () => options.cluster?.announce('revocations-scheduled') : () => timer.arm();
    github = await createGitHubTokens(config.github, { http, revocations, box, now, scheduled, log });
    // Whatever was scheduled before a restart (and fell due meanwhile) is picked up here.
    timer?.arm();
    const apps = github;
    registry.gauge(
      'keyway_github_app_rate_limit_remaining',
      "What GitHub last reported of each GitHub App's rate limit (x-ratelimit-remaining).",
      ['app'],
      () => apps.quotas().map(({ appId, remaining }) => [{ app: appId }, remaining] as const),
    );
    revocationTimer = timer;
  }
  // Revocations (and completed CI work) are claims made on the writer thread; whether one stands is read on this thread's connection.
  const replayReads = new SqliteReplayGuard(db);
  const alerts = writerThreadAlertStore(audit, db);
  // Only the leader runs audit upkeep, so only its rounds are counted and can leave /healthz degraded.
  const upkeepRounds = leader ? new AuditUpkeepRounds(registry, { now, intervalSeconds: config.audit.checkpointSeconds }) : undefined;
  const { app, jwks } = createBroker({
    settings: config,
    policies: () => policies.current,
    keys,
    keyStore,
    keysWithdrawn: async () => {
      emptyWalOfRemovedKeys();
      await live.refresh(now());
    },
    audit,
    alerts,
    // The alert rules that read each record after its answer: a shutdown lets them finish.
    background: (_c, task) =>
      void work.track(
        'alert_rules',
        task.catch((error: unknown) => log.error('background task failed', { error: String(error) })),
      ),
    replay: writerThreadReplayGuard(audit),
    revocations: revocationList(writerThreadReplayGuard(audit), (keys, at) => replayReads.holdsAll(keys, at)),
    endedCiWork: endedCiWork(writerThreadReplayGuard(audit), (key, at) => replayReads.holds(key, at)),
    clientIp,
    limiter: new MemoryRateLimiter(),
    crypto: NODE_JWT_CRYPTO,
    metrics: brokerMetrics(registry),
    health: () => {
      const report = withAuditWriter(
        withLeader(policyHealth(policies.current, policies.lastReload ?? livePolicyStore?.lastSwitch()), options.cluster?.leaderStatus()),
        audit.oldestWaitSeconds(),
      );
      return withKeyRingAge(upkeepRounds?.health(report) ?? report, live, now(), KEY_RING_SERVED_MS);
    },
    log,
    now,
    ...(github === undefined ? {} : { github }),
    proxyUpstreams: await openUpstreams(config.proxyUpstreams ?? [], box),
    // The request line's target, before @hono/node-server's URL parse resolves its dot segments.
    requestTarget: (c) => (c.env as HttpBindings | undefined)?.incoming?.url,
    fetch: connect,
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
    webhooks: {
      deliveries: new SqliteDeliveryLog(db),
      live: livePolicySetOf(policies, liveSet, load, now, () => options.cluster?.announce('policies-switched')),
      loadOptions: () => loadOptions,
    },
  });
  // A ring too old to serve is reloaded before it signs, as a request's is, and signs nothing while it cannot be: it may
  // hold a key withdrawn elsewhere, and audit verify fails a checkpoint signed with one past KEY_RING_SERVED_MS after its
  // withdrawal. Asked before each signature, not once a round: one that waited on the writer lock or pruned for long may
  // sign past that bound after it started.
  const signingRing = async () => (live.isOlderThan(now(), KEY_RING_SERVED_MS) ? live.refresh(now()) : live.ring);
  // Checkpoints and pruning on a timer; a failed round is logged, counted (upkeepRounds) and tried again next time.
  const sign = checkpointSigner(config.issuer, signingRing, now);
  const verify = checkpointVerifier(keys);
  // The last checkpoint this process signed: stored ones deleted behind its back are found while it runs.
  const signedSoFar: SignedSoFar = {};
  const round = async (): Promise<void> => {
    // A round whose ring cannot be reloaded prunes nothing either, and says why.
    try {
      await signingRing();
    } catch (error) {
      log.error('audit log upkeep skipped: the signing keys are unavailable', { error: errorText(error) });
      upkeepRounds?.failed('signing_keys_unavailable');
      return;
    }
    try {
      const { pruned, checkpoint } = await maintainAuditLog(audit, sign, { now: now(), retentionDays: config.audit.retentionDays, verify, signedSoFar });
      if (pruned > 0) log.info('audit log pruned', { records: pruned, anchor_seq: (await audit.checkpoints(0, 1))[0]?.seq });
      if (checkpoint !== undefined) log.info('audit checkpoint signed', { seq: checkpoint.seq, hash: checkpoint.hash });
      const alertsPruned = await pruneAlertsPastRetention(alerts, now(), config.audit.retentionDays);
      if (alertsPruned > 0) log.info('audit alerts pruned', { alerts: alertsPruned });
      upkeepRounds?.succeeded();
    } catch (error) {
      log.error('audit log upkeep failed', { error: errorText(error) });
      upkeepRounds?.failed(upkeepFailureOf(error));
    }
  };
  // One round at a time (the timer's, an operator's, the one at shutdown): one that read the checkpoints before another
  // signed would take the other's for a deletion, and two prunes of one candidate conflict.
  let rounds = Promise.resolve();
  const maintain = (): Promise<void> => {
    rounds = rounds.then(round);
    return rounds;
  };
  if (leader) await maintain();
  const auditUpkeep = async (): Promise<void> => {
    if (leader) await work.track('audit_upkeep', maintain());
  };
  const upkeep = leader ? setInterval(() => void auditUpkeep(), config.audit.checkpointSeconds * 1000) : undefined;
  upkeep?.unref();

  // The key life cycle on a timer, advanced by the leader; every process reloads the ring each round, so a rotation reaches it.
  const cycle = keyLifeCycle(config.keys, config.maxTtlSeconds);
  const keyUpkeep = (options: { rotate?: boolean } = {}): Promise<KeyTransition[]> =>
    work.track(
      'key_upkeep',
      (async () => {
        let transitions: KeyTransition[];
        try {
          transitions = leader ? await keyStore.advanceKeys({ now: now(), cycle, rotate: options.rotate === true, upkeep: true }) : [];
        } catch (error) {
          // The life cycle's write failed (a lock held past the busy timeout), not the keys: the ring is reloaded all the
          // same, so that the process does not stop serving it (nor say it is not ready) for want of a write.
          await live.refresh(now());
          throw error;
        }
        for (const transition of transitions) log.info('signing key life cycle', { ...transition });
        if (transitions.some((transition) => transition.kind === 'remove')) emptyWalOfRemovedKeys();
        await live.refresh(now());
        return transitions;
      })(),
    );
  // As on Workers, a ring that cannot be reloaded is not served for long: a key withdrawn elsewhere (another process, the
  // data dir) must not stay in use. Past KEY_RING_SERVED_MS each request tries the reload itself (once a failure's backoff
  // has passed) and is answered 503 while it fails; /readyz says not ready.
  const keyLoads = new FailureBackoff();
  const keysTooOld = () => live.isOlderThan(now(), KEY_RING_SERVED_MS);
  const keysUnavailable = (request: Request) =>
    staleKeyRingRefusal(live, request, { arrived: now(), clock: now, maxAgeMs: KEY_RING_SERVED_MS, backoff: keyLoads, log });
  await keyUpkeep();
  const keyTimer = setInterval(() => {
    keyUpkeep().catch((error: unknown) => log.error('signing key upkeep failed', { error: errorText(error) }));
  }, KEY_RING_REFRESH_SECONDS * 1000);
  keyTimer.unref();

  const cluster = options.cluster;
  if (cluster !== undefined) {
    const down = (): number => {
      const status = cluster.leaderStatus();
      return status.serving ? 0 : Math.max(0, (Date.now() - status.since) / 1000);
    };
    registry.gauge('keyway_leader_serving', 'Whether a leader broker process serves (KEYWAY_PROCESSES): 1, or 0 while none runs the timers.', [], () => [
      [{}, cluster.leaderStatus().serving ? 1 : 0],
    ]);
    registry.gauge(
      'keyway_leader_unavailable_seconds',
      'How long no leader broker process has served (KEYWAY_PROCESSES): no audit checkpoints, key rotation or GitHub revocations meanwhile; 0 while one serves.',
      [],
      () => [[{}, down()]],
    );
  }
  registry.gauge(
    'keyway_signing_keys_age_seconds',
    `How long ago this process last loaded its signing key ring; past ${KEY_RING_SERVED_MS / 1000} it cannot be reloaded, and every request that needs a key is answered 503.`,
    [],
    () => [[{}, Math.floor(live.age(now()) / 1000)]],
  );
  registry.gauge(
    'keyway_audit_writer_waiting_seconds',
    "How long the oldest write this process's audit writer has not answered yet (an audit append, a single-use claim, an alert write) has waited; 0 when none waits.",
    [],
    () => [[{}, audit.oldestWaitSeconds()]],
  );
  app.route('/metrics', metricsRoute(registry, config.metricsToken, peerAddress));
  if (devUrl !== undefined) {
    const devKey = await openInDataDir(pin, () => loadDevIssuerKey(dataDir));
    app.route(DEV_ISSUER_PATH, devIssuerRoutes(devUrl, devKey));
  }

  // Policies loaded and signing keys open (start-up stops otherwise); ready while the audit log takes writes, its writer
  // answers them (a write left waiting past STALLED_AFTER_SECONDS holds every exchange behind it), the key ring is not
  // too old to serve, and no shutdown began.
  let shuttingDown = false;
  listener.serve(app, () => !shuttingDown && audit.writable() && audit.oldestWaitSeconds() <= STALLED_AFTER_SECONDS && !keysTooOld(), keysUnavailable);
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${listener.port}`;
  const watcher = config.watchPolicies ? policies.watch(config.policiesDir) : undefined;
  log.info('keyway listening', {
    url,
    issuer: config.issuer,
    policies: policies.current.policies.length,
    data_dir: config.dataDir,
    watching_policies: watcher !== undefined,
    pid: process.pid,
    ...(options.cluster === undefined ? {} : { leader, shared_audit_writer: sharedWriter !== undefined || audit.shared }),
  });
  if (sharedWriter !== undefined) options.cluster?.announce('audit-writer-listening');
  const hostAddresses = Object.values(networkInterfaces()).flatMap((addresses) => (addresses ?? []).map(({ address }) => address));
  const local = hostLocalProxies(trustedProxies, hostAddresses);
  if (local.length > 0) {
    log.warn(
      "KEYWAY_TRUSTED_PROXIES trusts an address of this host's own processes (loopback, one of its interfaces', Docker's bridge gateway): " +
        `every process on this host can connect from it and name any client in ${trustedProxies.header}, ` +
        "the rate limits' and the audit record's. Trust it only where no other user's processes run (a container or host of the broker's and its proxy's own)",
      { trusted: local },
    );
  }
  if (devUrl !== undefined) {
    log.warn('DEVELOPMENT ISSUER ENABLED (KEYWAY_DEV=1): tokens from `keyway dev token` are trusted by dev policies. Never run this in production.', {
      dev_issuer: devUrl,
    });
  }

  let closed: Promise<void> | undefined;
  let stage = 'serving';
  async function shutDown(): Promise<void> {
    shuttingDown = true;
    joinsStopped = true;
    listener.endKeepAlive();
    stage = 'draining';
    if (config.shutdown.drainSeconds > 0) await sleep(config.shutdown.drainSeconds * 1000);
    stage = 'closing_listener';
    await listener.close();
    stage = 'stopping_timers';
    watcher?.close();
    clearInterval(upkeep);
    clearInterval(keyTimer);
    await revocationTimer?.close();
    // A key rotation or checkpoint round under way ends in its own transaction, before the database closes.
    await work.settled();
    // What the followers sent is committed and answered before the last checkpoint.
    stage = 'closing_shared_audit_writer';
    clearInterval(rejoin);
    await sharedWriter?.close();
    stage = 'final_checkpoint';
    // Sign the head on the way out, so the last records are anchored too (the leader, which stops last, anchors everyone's).
    if (leader) await maintain();
    stage = 'closing_audit_log';
    await audit.close();
    db.close();
    privateDir.close();
    stage = 'closed';
  }

  return {
    url,
    config,
    dataDirIdentity: pin.identity,
    jwks,
    policies: () => policies.current,
    reloadPolicies,
    auditUpkeep,
    keyUpkeep,
    github,
    revokeDueGitHubTokens: async () => revocationTimer?.runNow(),
    heard: (event) => {
      if (event === 'policies-switched') {
        // Another process saved a set: it is read, and served once the master key vouches for it. Unless this process
        // switched meanwhile (its own push, or a later announcement read sooner): then what it serves is newer than this read.
        void liveSet
          .read()
          .then((current) => (current ? reloadPolicies() : undefined))
          .catch((error: unknown) => log.error('live policy set not read', { error: String(error) }));
      } else if (event === 'revocations-scheduled') revocationTimer?.arm();
      else void joinSharedWriter();
    },
    close: () => {
      closed ??= shutDown();
      return closed;
    },
    auditWriterWaitingSeconds: () => audit.oldestWaitSeconds(),
    closing: () => ({ stage, requests_in_flight: listener.inFlight, audit_appends_queued: audit.queued, ...work.counts() }),
  };
}

/** `report`, `degraded` while the audit writer has left a write unanswered for more than STALLED_AFTER_SECONDS, and saying how long. */
function withAuditWriter(report: HealthReport, waitingSeconds: number): HealthReport {
  if (waitingSeconds <= STALLED_AFTER_SECONDS) return report;
  return { ...report, status: 'degraded', audit_writer: { waiting_seconds: Math.round(waitingSeconds * 10) / 10 } };
}

/** `report`, `degraded` while no leader serves, and saying so in detail (with several broker processes). */
function withLeader(report: HealthReport, status: LeaderStatus | undefined): HealthReport {
  if (status === undefined) return report;
  if (status.serving) return { ...report, leader: { serving: true } };
  return { ...report, status: 'degraded', leader: { serving: false, since: new Date(status.since).toISOString(), reason: status.reason } };
}

/**
 * The Node broker's live set as pushes replace it: a set that loads is attested under the master
 * key, saved in the SQLite file (so a restart serves it) and then switched in; one that does not
 * changes nothing. Saving happens inside the switch, so the set saved and the set serving are
 * always the same.
 */
function livePolicySetOf(
  policies: ReloadablePolicies,
  liveSet: VouchedLiveSet,
  load: (files: readonly PolicyFile[]) => PolicySet,
  now: () => number,
  switched: () => void,
): LivePolicySet {
  const store = liveSet.store;
  const record = (status: PolicyReloadStatus): PolicyReloadStatus => {
    store?.recordSwitch(status);
    return status;
  };
  return {
    adopt: async (files, source) => {
      const attested = await liveSet.attest(files);
      const status = record(
        policies.replace(
          () => load(files),
          source,
          new Date(now()),
          () => liveSet.save(files, source, now(), attested),
        ),
      );
      // The other broker processes load the saved set too.
      if (status.ok) switched();
      return status;
    },
    refuse: async (problem, source) => record(policies.refuse([problem], source, new Date(now()))),
    lastSwitch: async () => policies.lastReload ?? store?.lastSwitch(),
  };
}
