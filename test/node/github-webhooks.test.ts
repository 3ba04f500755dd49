import { inject } from 'vitest';
import { githubWebhookSuite } from '../suites/github-webhook-suite.ts';
import { startNodeHarness } from './node-harness.ts';

githubWebhookSuite('Node', startNodeHarness, () => inject('testIssuerBase'), () => inject('fakeGitHubBase'));
