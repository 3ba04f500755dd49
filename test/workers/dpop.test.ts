import { inject } from 'vitest';
import { dpopSuite } from '../suites/dpop-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

dpopSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
