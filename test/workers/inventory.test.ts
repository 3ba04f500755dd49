import { inject } from 'vitest';
import { inventorySuite } from '../suites/inventory-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

inventorySuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
