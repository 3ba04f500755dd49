import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { hostileInputSuite, hostileProxyInputSuite, hostileWebhookInputSuite } from '../suites/hostile-input-suite.ts';
import { startNodeHarness } from './node-harness.ts';

const masterKey = randomBytes(32).toString('base64');

hostileInputSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fuzzRuns'),
);
hostileProxyInputSuite(
  'Node',
  startNodeHarness,
  () => ({ issuer: inject('testIssuerBase'), upstream: inject('fakeUpstreamBase') }),
  () => masterKey,
  () => inject('fuzzRuns'),
);
hostileWebhookInputSuite(
  'Node',
  startNodeHarness,
  () => inject('fakeGitHubBase'),
  () => inject('fuzzRuns'),
);
