import { inject } from 'vitest';
import { auditBoundsSuite } from '../suites/audit-bounds-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

auditBoundsSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
