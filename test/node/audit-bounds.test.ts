import { inject } from 'vitest';
import { auditBoundsSuite } from '../suites/audit-bounds-suite.ts';
import { startNodeHarness } from './node-harness.ts';

auditBoundsSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
