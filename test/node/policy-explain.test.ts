import { inject } from 'vitest';
import { policyExplainSuite } from '../suites/policy-explain-suite.ts';
import { startNodeHarness } from './node-harness.ts';

policyExplainSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
