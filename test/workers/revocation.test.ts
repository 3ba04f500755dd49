import { inject } from 'vitest';
import { revocationSuite } from '../suites/revocation-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

revocationSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
