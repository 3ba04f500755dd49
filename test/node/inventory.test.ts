import { inject } from 'vitest';
import { inventorySuite } from '../suites/inventory-suite.ts';
import { startNodeHarness } from './node-harness.ts';

inventorySuite('Node', startNodeHarness, () => inject('testIssuerBase'));
