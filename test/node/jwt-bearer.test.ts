import { inject } from 'vitest';
import { jwtBearerSuite } from '../suites/jwt-bearer-suite.ts';
import { startNodeHarness } from './node-harness.ts';

jwtBearerSuite('Node', startNodeHarness, () => inject('testIssuerBase'));
