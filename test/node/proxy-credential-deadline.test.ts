import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { silentLogger } from '../../src/core/log.ts';
import { DATABASE_FILE, startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { freshIssuer, type BrokerHarness } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { BROKER_ISSUER, startNodeHarness, testConfig, writeTree } from './node-harness.ts';

const UPSTREAMS = 'upstreams:\n  github:\n    auth: { kind: github-app }\n    limits: { timeout_seconds: 1 }\n';
const policy = (issuer: TestIssuer) => `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934" }
grant:
  proxy: { upstream: github, allow: [{ method: GET, path: "/repos/{repository}/issues", permissions: { issues: read } }] }
`;

describe('proxy mode: the deadline covers minting the GitHub credential', () => {
  let issuer: TestIssuer;
  let broker: BrokerHarness;
  let github: FakeGitHub;
  let job: () => Promise<string>;

  beforeAll(async () => {
    issuer = freshIssuer(inject('testIssuerBase'), 'proxy-credential-deadline');
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    broker = await startNodeHarness(
      { 'proxy/github.yaml': policy(issuer) },
      { settings: { ...github.settings, KEYWAY_ALLOW_HTTP_LOOPBACK: '1', KEYWAY_PROXY_UPSTREAMS: UPSTREAMS } },
    );
    job = () => issuer.sign(ciClaims(issuer.url, broker.issuer));
  });
  afterAll(async () => {
    await github?.misbehave(null);
    await broker?.close();
  });

  it('answers 504 at the upstream’s timeout_seconds while GitHub is slow to mint, not once GitHub’s own deadline has passed', async () => {
    await github.misbehave({ kind: 'stall' });
    // Signed before the clock starts: the test issuer's round trip is not the broker's time.
    const authorization = `Bearer ${await job()}`;
    const started = performance.now();
    const response = await broker.request('/proxy/github/repos/acme/api/issues', { headers: { authorization } });
    const seconds = (performance.now() - started) / 1000;
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status, JSON.stringify(body)).toBe(504);
    expect(response.headers.get('keyway-error')).toBe('proxy_upstream_timeout');
    expect(seconds).toBeLessThan(3);
    const event = await broker.auditEvent(body['audit_event_id'] as string);
    expect(event?.reason).toBe('proxy_upstream_timeout');
  });

  it('lets a shutdown wait for the mint the 504 left running: the token GitHub minted after it is on the revocation schedule and on record', async () => {
    const slow = await FakeGitHub.create(inject('fakeGitHubBase'));
    // GitHub mints the token, then answers a second after the upstream's one-second deadline.
    await slow.install({ ...ACME_INSTALLATION, tokenDelayMs: 2000 });
    const root = writeTree({ 'policies/proxy/github.yaml': policy(issuer) });
    const { github: app, proxyUpstreams } = readBrokerSettings({ ...slow.settings, KEYWAY_ISSUER: BROKER_ISSUER, KEYWAY_PROXY_UPSTREAMS: UPSTREAMS });
    const config = testConfig(root, { ...(app === undefined ? {} : { github: app }), ...(proxyUpstreams === undefined ? {} : { proxyUpstreams }) });
    const node = await startNodeBroker(config, { log: silentLogger });
    let answer: { status: number; body: Record<string, unknown> };
    try {
      const response = await fetch(`${node.url}/proxy/github/repos/acme/api/issues`, {
        headers: { authorization: `Bearer ${await issuer.sign(ciClaims(issuer.url, BROKER_ISSUER))}` },
      });
      answer = { status: response.status, body: (await response.json()) as Record<string, unknown> };
    } finally {
      // The shutdown begins at once, while GitHub still holds its answer.
      await node.close();
    }
    const { status, body } = answer;
    expect(status, JSON.stringify(body)).toBe(504);

    const db = openSqliteFile(join(root, 'data', DATABASE_FILE), { readonly: true });
    try {
      const outcome = await new SqliteAuditStore(db).get(body['audit_event_id'] as string);
      const [minted, ...more] = await slow.tokens();
      expect(more).toEqual([]);
      expect(minted?.revoked).toBe(false);
      // Scheduled under the decision record's id, as every proxy installation token is.
      expect(db.all('SELECT id, token_sha256 FROM github_token_revocations')).toEqual([{ id: outcome?.proxy?.decision_id, token_sha256: minted?.sha256 }]);
      // And named in the log before the database closed, under the same decision.
      const late = db
        .all<{ event: string }>("SELECT event FROM audit_events WHERE reason = 'proxy_credential_late'")
        .map((row) => JSON.parse(row.event) as AuditEvent);
      expect(late.map((event) => event.proxy)).toMatchObject([{ decision_id: outcome?.proxy?.decision_id, credential: { token_sha256: minted?.sha256 } }]);
    } finally {
      db.close();
    }
  });
});
