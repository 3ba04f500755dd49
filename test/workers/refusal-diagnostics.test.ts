import { inject } from 'vitest';
import { refusalDiagnosticsSuite } from '../suites/refusal-diagnostics-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

refusalDiagnosticsSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
