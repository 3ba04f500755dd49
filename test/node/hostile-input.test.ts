import { inject } from 'vitest';
import { hostileInputSuite } from '../suites/hostile-input-suite.ts';
import { startNodeHarness } from './node-harness.ts';

hostileInputSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fuzzRuns'),
);
