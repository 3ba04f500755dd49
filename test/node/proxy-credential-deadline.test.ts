import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ciClaims } from '../support/test-issuer.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { freshIssuer, type BrokerHarness } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

describe('proxy mode: the deadline covers minting the GitHub credential', () => {
  let broker: BrokerHarness;
  let github: FakeGitHub;
  let job: () => Promise<string>;

  beforeAll(async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'proxy-credential-deadline');
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    broker = await startNodeHarness(
      {
        'proxy/github.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934" }
grant:
  proxy: { upstream: github, allow: [{ method: GET, path: "/repos/{repository}/issues", permissions: { issues: read } }] }
`,
      },
      {
        settings: {
          ...github.settings,
          KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
          KEYWAY_PROXY_UPSTREAMS: 'upstreams:\n  github:\n    auth: { kind: github-app }\n    limits: { timeout_seconds: 1 }\n',
        },
      },
    );
    job = () => issuer.sign(ciClaims(issuer.url, broker.issuer));
  });
  afterAll(async () => {
    await github?.misbehave(null);
    await broker?.close();
  });

  it('answers 504 at the upstream’s timeout_seconds while GitHub is slow to mint, not once GitHub’s own deadline has passed', async () => {
    await github.misbehave({ kind: 'stall' });
    const started = performance.now();
    const response = await broker.request('/proxy/github/repos/acme/api/issues', { headers: { authorization: `Bearer ${await job()}` } });
    const seconds = (performance.now() - started) / 1000;
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status, JSON.stringify(body)).toBe(504);
    expect(response.headers.get('keyway-error')).toBe('proxy_upstream_timeout');
    expect(seconds).toBeLessThan(3);
    const event = await broker.auditEvent(body['audit_event_id'] as string);
    expect(event?.reason).toBe('proxy_upstream_timeout');
  });
});
