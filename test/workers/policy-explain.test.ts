import { inject } from 'vitest';
import { policyExplainSuite } from '../suites/policy-explain-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

policyExplainSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
