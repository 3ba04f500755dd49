import { inject } from 'vitest';
import { issuerCatalogSuite } from '../suites/issuer-catalog-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

issuerCatalogSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
