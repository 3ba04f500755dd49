import { inject } from 'vitest';
import { cloudExchangeSuite } from '../suites/cloud-exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

cloudExchangeSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
