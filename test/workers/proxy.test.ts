import { inject } from 'vitest';
import { proxyGitHubSuite, proxySuite, type ProxyRuntime } from '../suites/proxy-suite.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

const runtime: ProxyRuntime = {
  name: 'Workers',
  start: startWorkersHarness,
  issuerBase: () => inject('testIssuerBase'),
  upstreamBase: () => inject('fakeUpstreamBase'),
  githubBase: () => inject('fakeGitHubBase'),
  brokerIssuer: workerEnv.KEYWAY_ISSUER,
  masterKey: () => workerEnv.KEYWAY_MASTER_KEY ?? '',
};

proxySuite(runtime);
proxyGitHubSuite(runtime);
