// First, so the broker's .tsx modules (the /audit page) load: hence the dynamic imports below.
import './register-jsx.ts';

const { nodeConfigFromEnv } = await import('../../config/node-config.ts');
const { ConfigError } = await import('../../core/settings/read-settings.ts');
const { startNodeBroker } = await import('./start-node-broker.ts');
const { BrokerProcessError, processLogFields, readProcessCount, readUnresponsiveSeconds, runBrokerProcesses } = await import('./broker-processes.ts');
const { jsonLogger } = await import('../../core/log.ts');
const { PolicyLoadError } = await import('../../core/policy/load-policies.ts');
const { gracefulShutdown } = await import('./graceful-shutdown.ts');

/** `npm start`: the Node broker, configured from the environment; KEYWAY_PROCESSES of them. */
try {
  const config = nodeConfigFromEnv(process.env);
  const log = jsonLogger(processLogFields());
  const brokers = await runBrokerProcesses(
    readProcessCount(process.env),
    (cluster) => startNodeBroker(config, { log, ...(cluster === undefined ? {} : { cluster }) }),
    log,
    { unresponsiveSeconds: readUnresponsiveSeconds(process.env) },
  );
  // A process that serves shuts its broker down gracefully; a supervisor stops its processes (the leader last) and exits as the worst of them did.
  const stop =
    brokers.serving === undefined
      ? (): void => void brokers.stop().then((code) => process.exit(code))
      : gracefulShutdown(brokers.serving, config.shutdown, log);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => brokers.reload());
} catch (error) {
  if (error instanceof PolicyLoadError) {
    console.error(`keyway: the policies do not load, so the broker will not start:\n${error.message}`);
  } else if (error instanceof ConfigError || error instanceof BrokerProcessError) {
    console.error(`keyway: ${error.message}`);
  } else {
    throw error;
  }
  process.exit(1);
}
