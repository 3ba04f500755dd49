import type { Broker } from './broker.ts';
import { jsonLogger } from './log.ts';
import type { PolicyFile } from './policy/load-policies.ts';
import bundledPolicies from '../build/policies.json';
import { createWorkerBroker, type WorkerEnv } from './workers/worker-broker.ts';

export { KeywayState } from './workers/keyway-state.ts';
export { ReplayGuardState } from './workers/replay-guard-state.ts';
export { RateLimitState } from './workers/rate-limit-state.ts';

const log = jsonLogger({ runtime: 'workers' });
let broker: Promise<Broker> | undefined;

export default {
  async fetch(request, env, ctx): Promise<Response> {
    broker ??= createWorkerBroker(env, bundledPolicies as readonly PolicyFile[], { log });
    let ready: Broker;
    try {
      ready = await broker;
    } catch (error) {
      // Try again on the next request; until then, say so rather than fail obscurely.
      broker = undefined;
      log.error('broker failed to start', { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
      return Response.json({ error: 'temporarily_unavailable', error_description: 'the broker is not configured correctly' }, { status: 503 });
    }
    return ready.app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<WorkerEnv>;
