import { inject } from 'vitest';
import { proxySuite } from '../suites/proxy-suite.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

proxySuite({
  name: 'Workers',
  start: startWorkersHarness,
  issuerBase: () => inject('testIssuerBase'),
  upstreamBase: () => inject('fakeUpstreamBase'),
  masterKey: () => workerEnv.KEYWAY_MASTER_KEY ?? '',
});
