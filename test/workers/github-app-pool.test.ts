import { inject } from 'vitest';
import { githubAppPoolSuite } from '../suites/github-app-pool-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

githubAppPoolSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
