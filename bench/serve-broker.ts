// Child process of the benchmarks (bench/broker-process.ts starts it): one broker, with the durable
// audit log on (exactly `npm start`, KEYWAY_PROCESSES included: then this process supervises that
// many, each this script again) or off (the same core with an audit store that keeps nothing),
// printing its URL once it listens. Over the IPC channel it answers 'memory' with its
// process.memoryUsage() after a full collection when started with --expose-gc (what is still
// reachable, not where the heap's sawtooth happens to be), for the soak; SIGTERM closes it as
// `npm start` does.
import cluster from 'node:cluster';
import '../src/runtimes/node/register-jsx.ts';
import { revocationList } from '../src/core/revocation/revocation-list.ts';

process.on('message', (message) => {
  if (message !== 'memory') return;
  (globalThis as { gc?: () => void }).gc?.();
  process.send?.({ memory: process.memoryUsage() });
});

const mode = process.argv[2];
const { nodeConfigFromEnv } = await import('../src/config/node-config.ts');
const config = nodeConfigFromEnv(process.env);

if (mode === 'on') {
  const { startNodeBroker } = await import('../src/runtimes/node/start-node-broker.ts');
  const { readProcessCount, runBrokerProcesses } = await import('../src/runtimes/node/broker-processes.ts');
  const { silentLogger: log } = await import('../src/core/log.ts');
  const brokers = await runBrokerProcesses(
    readProcessCount(process.env),
    (part) => startNodeBroker(config, { log, ...(part === undefined ? {} : { cluster: part }) }),
    log,
  );
  process.once('SIGTERM', () => void brokers.stop().then(() => process.exit(0)));
  // The supervisor (or the only process) says where; the processes it runs share its stdout.
  if (cluster.isPrimary) process.stdout.write(`${brokers.url}\n`);
} else if (mode === 'off') {
  const { serve } = await import('@hono/node-server');
  const { getConnInfo } = await import('@hono/node-server/conninfo');
  const { createBroker } = await import('../src/runtimes/create-broker.ts');
  const { silentLogger } = await import('../src/core/log.ts');
  const { loadPolicies } = await import('../src/core/policy/load-policies.ts');
  const { readPolicyDirectory } = await import('../src/storage/read-policy-directory.ts');
  const { openSqliteMemory } = await import('../src/storage/sqlite-file.ts');
  const { migrate } = await import('../src/storage/migrate.ts');
  const { SqliteAuditStore } = await import('../src/storage/sqlite-audit-store.ts');
  const { SqliteAlertStore } = await import('../src/storage/sqlite-alert-store.ts');
  const { SqliteReplayGuard } = await import('../src/storage/sqlite-replay-guard.ts');
  const { generateSigningKey } = await import('../src/core/mint/generate-signing-key.ts');
  const { KeyRing } = await import('../src/core/mint/key-ring.ts');

  /** Keeps nothing: the baseline the durable log is measured against. */
  class DiscardAuditStore extends SqliteAuditStore {
    override async append() {
      return { seq: 0, prev_hash: '', hash: '' };
    }
  }
  const memory = openSqliteMemory();
  migrate(memory);
  const policies = loadPolicies(readPolicyDirectory(config.policiesDir), {
    brokerIssuer: config.issuer,
    maxTtlSeconds: config.maxTtlSeconds,
    allowHttpLoopback: config.allowHttpLoopback,
  });
  const keys = await KeyRing.from([await generateSigningKey(Date.now())]);
  const { app } = createBroker({
    settings: { ...config, alerts: { ...config.alerts, rules: new Set() } },
    policies: () => policies,
    keys: () => keys,
    audit: new DiscardAuditStore(memory),
    alerts: new SqliteAlertStore(memory),
    replay: new SqliteReplayGuard(memory),
    revocations: ((guard) => revocationList(guard, (keys, now) => guard.holdsAll(keys, now)))(new SqliteReplayGuard(memory)),
    clientIp: (c) => getConnInfo(c).remote.address,
    limiter: new (await import('../src/core/limits/memory-rate-limiter.ts')).MemoryRateLimiter(),
    log: silentLogger,
  });
  serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) => process.stdout.write(`http://127.0.0.1:${info.port}\n`));
} else {
  throw new Error('usage: serve-broker.ts on|off');
}
