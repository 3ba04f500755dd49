import { inject } from 'vitest';
import { exchangeSuite } from '../suites/exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

exchangeSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
