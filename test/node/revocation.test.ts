import { inject } from 'vitest';
import { revocationSuite } from '../suites/revocation-suite.ts';
import { startNodeHarness } from './node-harness.ts';

revocationSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
