import { inject } from 'vitest';
import { auditApiSuite } from '../suites/audit-api-suite.ts';
import { startNodeHarness } from './node-harness.ts';

auditApiSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
