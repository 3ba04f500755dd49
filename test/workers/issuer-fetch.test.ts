import { inject } from 'vitest';
import { issuerFetchSuite } from '../suites/issuer-fetch-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

issuerFetchSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
