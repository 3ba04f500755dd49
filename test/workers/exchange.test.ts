import { inject } from 'vitest';
import { exchangeSuite } from '../suites/exchange-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

exchangeSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
