import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { OUTBOUND_TIMEOUT_MS } from '../../src/core/outbound/outbound-http.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION, githubForm } from '../suites/github-exchange-suite.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { replaySuite } from '../suites/replay-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startNodeHarness, testConfig, writeTree } from './node-harness.ts';

replaySuite('Node', startNodeHarness, () => inject('testIssuerBase'));

describe('single use on Node when storage fails', () => {
  let broker: NodeBroker | undefined;
  let saboteur: SqliteFile | undefined;
  afterEach(async () => {
    saboteur?.close();
    await broker?.close();
  });

  async function setup() {
    const github = freshIssuer(inject('testIssuerBase'), 'single-node');
    const root = writeTree({
      'policies/deploy.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsingle_use: true\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://deploy.acme.dev\n`,
    });
    broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const token = await github.sign(ciClaims(github.url, broker.config.issuer));
    const url = broker.url;
    const exchange = async () => {
      const response = await fetch(`${url}/token`, {
        method: 'POST',
        body: exchangeForm(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    return { exchange, db: saboteur, audit: new SqliteAuditStore(saboteur) };
  }

  it('fails closed when the audit record of a claimed exchange cannot be written: no token, and the token stays used', async () => {
    const { exchange, db, audit } = await setup();
    db.exec('ALTER TABLE audit_events RENAME TO audit_events_away');
    const unrecorded = await exchange();
    expect(unrecorded.status).toBe(503);
    expect(unrecorded.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(unrecorded.body).not.toHaveProperty('access_token');
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM replay_claims')[0]?.n).toBe(1);
    db.exec('ALTER TABLE audit_events_away RENAME TO audit_events');

    const retry = await exchange();
    expect(retry.status).toBe(400);
    const event = await audit.get(retry.body['audit_event_id'] as string);
    expect(event?.reason).toBe('replayed');
    // It names the exchange that claimed the token, which left no record because it issued nothing.
    const claimedBy = /audit event (\S+)/.exec(event?.detail ?? '')?.[1];
    expect(claimedBy).toBeDefined();
    expect(await audit.get(claimedBy ?? '')).toBeUndefined();
  });

  it('answers 503 when single use cannot be checked, and grants the same token once it can', async () => {
    const { exchange, db, audit } = await setup();
    db.exec('ALTER TABLE replay_claims RENAME TO replay_claims_away');
    const unchecked = await exchange();
    expect(unchecked.status).toBe(503);
    expect(unchecked.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(unchecked.body).not.toHaveProperty('access_token');
    expect(await audit.get(unchecked.body['audit_event_id'] as string)).toMatchObject({ decision: 'error', reason: 'replay_guard_unavailable' });
    db.exec('ALTER TABLE replay_claims_away RENAME TO replay_claims');
    expect((await exchange()).status).toBe(200);
  });
});

describe('single use on Node when GitHub fails after the claim', () => {
  let broker: BrokerHarness | undefined;
  afterEach(() => broker?.close());

  it('keeps the token used when GitHub minted a token whose answer came too late: a claim given back would buy a second one', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'single-github');
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    // GitHub mints the token, then answers after the broker stopped waiting for the call.
    await github.install({ ...ACME_INSTALLATION, tokenDelayMs: OUTBOUND_TIMEOUT_MS + 500 });
    const policy = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nsingle_use: true\nmatch: { repository_id: "734201" }
grant:\n  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read } }\n`;
    broker = await startNodeHarness({ 'release.yaml': policy }, { settings: github.settings });
    const token = await issuer.sign(ciClaims(issuer.url, broker.issuer));

    const unavailable = { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' } as const;
    const failed = await expectRefusal(broker, await postToken(broker, githubForm(token)), unavailable);
    expect((await github.tokens()).filter((state) => !state.revoked)).toHaveLength(1);
    const retry = await expectRefusal(broker, await postToken(broker, githubForm(token)), { error: 'invalid_request', reason: 'replayed' });
    expect(retry.detail).toContain(failed.id);
    expect(await github.tokens()).toHaveLength(1);
  }, 20_000);
});

describe('single use on Node across a policy change', () => {
  let broker: NodeBroker | undefined;
  afterEach(() => broker?.close());

  it("keeps a claim past the issuer's maximum age: a used token is replayed, not granted, once max_token_age is raised", async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'single-age');
    const policy = (maxAge: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${issuer.url}"${maxAge} }\nsingle_use: true\nmatch:\n  sub: svc-release\ngrant:\n  audience: https://release.acme.dev\n`;
    const root = writeTree({ 'policies/release.yaml': policy('') });
    const issuedAt = Math.floor(Date.now() / 1000);
    let clock = issuedAt * 1000;
    broker = await startNodeBroker(testConfig(root), { log: silentLogger, now: () => clock });
    const audit = new SqliteAuditStore(openSqliteFile(join(root, 'data', DATABASE_FILE)));
    // A GitLab job's token lives for the job's timeout, beyond the hour the preset accepts it for.
    const token = await issuer.sign({
      iss: issuer.url,
      aud: broker.config.issuer,
      sub: 'svc-release',
      jti: crypto.randomUUID(),
      iat: issuedAt,
      exp: issuedAt + 3 * 3600,
    });
    const url = broker.url;
    const exchange = async () => {
      const response = await fetch(`${url}/token`, {
        method: 'POST',
        body: exchangeForm(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      const body = (await response.json()) as Record<string, unknown>;
      return { status: response.status, body, event: await audit.get(body['audit_event_id'] as string) };
    };

    clock += 5 * 60_000;
    const first = await exchange();
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    clock += 60 * 60_000;
    expect((await exchange()).event).toMatchObject({ reason: 'token_too_old' });
    // The operator lets late jobs exchange, as docs/ci/gitlab.md says to: the token verifies again, and its claim must still stand.
    writeTree({ 'policies/release.yaml': policy(', max_token_age: 3h') }, root);
    expect(broker.reloadPolicies()).toMatchObject({ ok: true });
    const again = await exchange();
    expect(again.status, JSON.stringify(again.body)).toBe(400);
    expect(again.body).not.toHaveProperty('access_token');
    expect(again.event).toMatchObject({ reason: 'replayed' });
    expect(again.event?.detail).toContain(first.body['audit_event_id']);
  });
});
