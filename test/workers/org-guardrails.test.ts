import { inject } from 'vitest';
import { orgGuardrailsSuite } from '../suites/org-guardrails-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

orgGuardrailsSuite(
  'Workers',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
