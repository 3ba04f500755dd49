import { inject } from 'vitest';
import { refusalDiagnosticsSuite } from '../suites/refusal-diagnostics-suite.ts';
import { startNodeHarness } from './node-harness.ts';

refusalDiagnosticsSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
