import { inject } from 'vitest';
import { delegationSuite } from '../suites/delegation-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

delegationSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
