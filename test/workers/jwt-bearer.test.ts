import { inject } from 'vitest';
import { jwtBearerSuite } from '../suites/jwt-bearer-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

jwtBearerSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));
