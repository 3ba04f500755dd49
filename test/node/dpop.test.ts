import { inject } from 'vitest';
import { dpopSuite } from '../suites/dpop-suite.ts';
import { startNodeHarness } from './node-harness.ts';

dpopSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
