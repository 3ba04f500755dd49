import { inject } from 'vitest';
import { githubWebhookSuite } from '../suites/github-webhook-suite.ts';
import { startWorkersHarness } from './workers-harness.ts';

githubWebhookSuite('Workers', startWorkersHarness, () => inject('testIssuerBase'), () => inject('fakeGitHubBase'));
