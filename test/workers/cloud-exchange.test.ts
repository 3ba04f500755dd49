import { inject } from 'vitest';
import { cloudExchangeSuite } from '../suites/cloud-exchange-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

cloudExchangeSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
