import { inject } from 'vitest';
import { issuerCatalogSuite } from '../suites/issuer-catalog-suite.ts';
import { startNodeHarness } from './node-harness.ts';

issuerCatalogSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
