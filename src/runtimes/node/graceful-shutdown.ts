import type { ShutdownSettings } from '../../config/node-config.ts';
import { errorText, type Logger } from '../../core/log.ts';
import type { NodeBroker } from './start-node-broker.ts';

/** Exit code of a shutdown that did not finish in KEYWAY_SHUTDOWN_SECONDS, or failed. */
export const SHUTDOWN_INCOMPLETE = 1;

/**
 * What SIGTERM and SIGINT do to the broker process: one orderly `broker.close()` (the first
 * signal starts it, later ones are logged and change nothing), exit 0 when it is done, and
 * exit 1 with a line naming what was still running when KEYWAY_SHUTDOWN_SECONDS pass first.
 * Committed audit records never depend on this: each is durable before its answer leaves.
 */
export function gracefulShutdown(
  broker: Pick<NodeBroker, 'close' | 'closing'>,
  settings: ShutdownSettings,
  log: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): (signal: NodeJS.Signals) => void {
  let started = false;
  return (signal) => {
    if (started) {
      log.warn('shutdown already under way', { signal, ...broker.closing() });
      return;
    }
    started = true;
    log.info('shutdown started', { signal, shutdown_seconds: settings.seconds, drain_seconds: settings.drainSeconds });
    const deadline = setTimeout(() => {
      log.error('shutdown did not finish in time; exiting with work still running', { shutdown_seconds: settings.seconds, ...broker.closing() });
      exit(SHUTDOWN_INCOMPLETE);
    }, settings.seconds * 1000);
    broker.close().then(
      () => {
        clearTimeout(deadline);
        log.info('shutdown complete', { signal });
        exit(0);
      },
      (error: unknown) => {
        clearTimeout(deadline);
        log.error('shutdown failed', { error: errorText(error), ...broker.closing() });
        exit(SHUTDOWN_INCOMPLETE);
      },
    );
  };
}
