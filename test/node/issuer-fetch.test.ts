import { inject } from 'vitest';
import { issuerFetchSuite } from '../suites/issuer-fetch-suite.ts';
import { startNodeHarness } from './node-harness.ts';

issuerFetchSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
