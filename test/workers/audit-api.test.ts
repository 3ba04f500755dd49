import { inject } from 'vitest';
import { auditApiSuite } from '../suites/audit-api-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

auditApiSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
