import { inject } from 'vitest';
import { hostileInputSuite, hostileProxyInputSuite, hostileWebhookInputSuite } from '../suites/hostile-input-suite.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

hostileInputSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fuzzRuns'),
);
hostileProxyInputSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => ({ issuer: inject('testIssuerBase'), upstream: inject('fakeUpstreamBase') }),
  () => workerEnv.KEYWAY_MASTER_KEY ?? '',
  () => inject('fuzzRuns'),
);
hostileWebhookInputSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => inject('fakeGitHubBase'),
  () => inject('fuzzRuns'),
);
