import { inject } from 'vitest';
import { limitsSuite } from '../suites/limits-suite.ts';
import { startNodeHarness } from './node-harness.ts';

limitsSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
