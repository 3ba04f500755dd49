import { inject } from 'vitest';
import { hostileInputSuite } from '../suites/hostile-input-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

hostileInputSuite(
  'Workers (workerd)',
  startWorkersHarness,
  () => inject('testIssuerBase'),
  () => inject('fuzzRuns'),
);
