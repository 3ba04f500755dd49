import { inject } from 'vitest';
import { noStoreSuite } from '../suites/no-store-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

noStoreSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
