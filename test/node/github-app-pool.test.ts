import { inject } from 'vitest';
import { githubAppPoolSuite } from '../suites/github-app-pool-suite.ts';
import { startNodeHarness } from './node-harness.ts';

githubAppPoolSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
