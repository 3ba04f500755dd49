import { inject } from 'vitest';
import { githubExchangeSuite } from '../suites/github-exchange-suite.ts';
import { githubTokenMapSuite } from '../suites/github-token-map-suite.ts';
import { startNodeHarness } from './node-harness.ts';

githubExchangeSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

githubTokenMapSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
