import { inject } from 'vitest';
import { githubExchangeSuite } from '../suites/github-exchange-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

githubExchangeSuite('Workers', startWorkersHarness, () => inject('testIssuerBase'), () => inject('fakeGitHubBase'));
