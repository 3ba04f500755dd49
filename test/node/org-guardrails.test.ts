import { inject } from 'vitest';
import { orgGuardrailsSuite } from '../suites/org-guardrails-suite.ts';
import { startNodeHarness } from './node-harness.ts';

orgGuardrailsSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);
