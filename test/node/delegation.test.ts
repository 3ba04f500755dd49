import { inject } from 'vitest';
import { delegationSuite } from '../suites/delegation-suite.ts';
import { startNodeHarness } from './node-harness.ts';

delegationSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
