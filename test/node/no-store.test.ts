import { inject } from 'vitest';
import { noStoreSuite } from '../suites/no-store-suite.ts';
import { startNodeHarness } from './node-harness.ts';

noStoreSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
