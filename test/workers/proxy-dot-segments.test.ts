import { createExecutionContext } from 'cloudflare:test';
import { silentLogger } from '../../src/core/log.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { proxyDotSegmentsSuite } from '../suites/proxy-dot-segments-suite.ts';
import { ownStateNamespace, workerEnv } from './workers-harness.ts';

proxyDotSegmentsSuite('Workers (workerd)', async () => {
  const env = { ...workerEnv, STATE: ownStateNamespace(), AUDIT: ownStateNamespace(workerEnv.AUDIT), LIMITS: ownStateNamespace(workerEnv.LIMITS) };
  const broker = await createWorkerBroker(env, [], { log: silentLogger });
  return {
    send: (target, init) => {
      // workerd serves a request line's target unresolved (request.url keeps `/x/../proxy/…` as sent); a Request made
      // here would have its URL resolved first, so it is given the URL workerd would give it.
      const sent = new Request(`${workerEnv.KEYWAY_ISSUER}/`, init);
      Object.defineProperty(sent, 'url', { value: `${workerEnv.KEYWAY_ISSUER}${target}` });
      return Promise.resolve(broker.app.fetch(sent, env, createExecutionContext()));
    },
    auditEvent: (id) => broker.audit.log.get(id),
    close: () => Promise.resolve(),
  };
});
