import { inject } from 'vitest';
import { limitsSuite } from '../suites/limits-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

limitsSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
