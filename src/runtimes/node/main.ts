// First, so the broker's .tsx modules (the /audit page) load: hence the dynamic imports below.
import './register-jsx.ts';

const { nodeConfigFromEnv } = await import('../../config/node-config.ts');
const { ConfigError } = await import('../../core/settings/read-settings.ts');
const { startNodeBroker } = await import('./start-node-broker.ts');
const { PolicyLoadError } = await import('../../core/policy/load-policies.ts');
const { gracefulShutdown } = await import('./graceful-shutdown.ts');
const { jsonLogger } = await import('../../core/log.ts');

/** `npm start`: the Node broker, configured from the environment. */
try {
  const config = nodeConfigFromEnv(process.env);
  const log = jsonLogger();
  const broker = await startNodeBroker(config, { log });
  const stop = gracefulShutdown(broker, config.shutdown, log);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => void broker.reloadPolicies());
} catch (error) {
  if (error instanceof PolicyLoadError) {
    console.error(`keyway: the policies do not load, so the broker will not start:\n${error.message}`);
  } else if (error instanceof ConfigError) {
    console.error(`keyway: ${error.message}`);
  } else {
    throw error;
  }
  process.exit(1);
}
