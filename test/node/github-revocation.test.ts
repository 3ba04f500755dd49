import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { readGitHubAppSettings } from '../../src/github/github-settings.ts';
import { silentLogger } from '../../src/log.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/node/start-node-broker.ts';
import { openSqliteFile } from '../../src/node/sqlite-file.ts';
import { freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION, githubForm, githubPolicies } from '../suites/github-exchange-suite.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { testConfig, writeTree } from './node-harness.ts';

/** What only the Node runtime shows: the timer on its own, restarts, the SQLite file, the audit log failing. */
describe('GitHub token revocation on Node', () => {
  const started: NodeBroker[] = [];
  afterEach(async () => {
    for (const broker of started.splice(0)) await broker.close();
  });

  async function setup(): Promise<{ root: string; issuer: TestIssuer; github: FakeGitHub; start: () => Promise<NodeBroker> }> {
    const issuer = freshIssuer(inject('testIssuerBase'), 'github-node');
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    const root = writeTree(Object.fromEntries(Object.entries(githubPolicies(issuer)).map(([path, text]) => [`policies/${path}`, text])));
    const start = async (): Promise<NodeBroker> => {
      const broker = await startNodeBroker(testConfig(root, { github: readGitHubAppSettings(github.settings) }), { log: silentLogger });
      started.push(broker);
      return broker;
    };
    return { root, issuer, github, start };
  }

  const exchange = async (broker: NodeBroker, issuer: TestIssuer, ref: string, claims: Record<string, unknown> = {}) =>
    postToken({ issuer: broker.config.issuer, request: (path, init) => fetch(`${broker.url}${path}`, init) }, githubForm(await issuer.sign(ciClaims(issuer.url, broker.config.issuer, { ref, ...claims }))));

  async function until(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('revokes on its own timer when the TTL passes, then deletes the sealed token', async () => {
    const { issuer, github, start, root } = await setup();
    const broker = await start();
    const token = (await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string;
    expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
    await until(async () => (await github.repositoriesVisibleTo(token)).status === 401);
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    try {
      await until(async () => db.all('SELECT id FROM github_token_revocations').length === 0);
    } finally {
      db.close();
    }
  });

  it('keeps the schedule across a restart and revokes after it, the token sealed in the SQLite file', async () => {
    const { issuer, github, start, root } = await setup();
    const first = await start();
    const result = await exchange(first, issuer, 'refs/heads/short');
    const token = result.body['access_token'] as string;
    await first.close();
    started.splice(started.indexOf(first), 1);

    const dataDir = join(root, 'data');
    for (const file of readdirSync(dataDir)) expect(readFileSync(join(dataDir, file)).includes(token)).toBe(false);
    const db = openSqliteFile(join(dataDir, DATABASE_FILE));
    const [row] = db.all<{ id: string; sealed_token: string }>('SELECT id, sealed_token FROM github_token_revocations');
    db.close();
    expect(row?.id).toBe(result.body['audit_event_id']);
    expect(row?.sealed_token.split('.')).toHaveLength(5);
    // Still live: nobody revoked it while the broker was down.
    expect((await github.repositoriesVisibleTo(token)).status).toBe(200);

    await start();
    await until(async () => (await github.repositoriesVisibleTo(token)).status === 401);
  });

  it('revokes every token of a CI run at once on revokeRun, and no other', async () => {
    const { issuer, github, start } = await setup();
    const broker = await start();
    const ours = [(await exchange(broker, issuer, 'refs/heads/main', { run_id: '777' })).body, (await exchange(broker, issuer, 'refs/heads/main', { run_id: '777' })).body];
    const theirs = (await exchange(broker, issuer, 'refs/heads/main', { run_id: '778' })).body;
    expect(await broker.github?.revokeRun('734201', '777')).toBe(2);
    for (const body of ours) await until(async () => (await github.repositoriesVisibleTo(body['access_token'] as string)).status === 401);
    expect((await github.repositoriesVisibleTo(theirs['access_token'] as string)).status).toBe(200);
    expect(await broker.github?.revokeRun('734201', '777')).toBe(0);
  });

  it('revokes a minted token at once when the audit record cannot be written, and answers 503 without it', async () => {
    const { issuer, github, start, root } = await setup();
    const broker = await start();
    const saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    try {
      saboteur.exec('ALTER TABLE audit_events RENAME TO audit_events_away');
      const result = await exchange(broker, issuer, 'refs/heads/main');
      expect(result.status).toBe(503);
      expect(result.body).toMatchObject({ error: 'temporarily_unavailable' });
      expect(result.body).not.toHaveProperty('access_token');
      const minted = (await github.tokens()).at(-1);
      expect(minted).toMatchObject({ revoked: true, repositories: ['api', 'docs'] });
      expect(saboteur.all('SELECT id FROM github_token_revocations')).toEqual([]);
    } finally {
      saboteur.exec('ALTER TABLE audit_events_away RENAME TO audit_events');
      saboteur.close();
    }
  });

  it('retries a failed revocation with backoff while GitHub is down, and revokes once it is back', async () => {
    const { issuer, github, start, root } = await setup();
    const broker = await start();
    const token = (await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string;
    await github.setDown(true);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await broker.revokeDueGitHubTokens();
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    try {
      const [row] = db.all<{ attempts: number; next_attempt_at: number }>('SELECT attempts, next_attempt_at FROM github_token_revocations');
      expect(row?.attempts).toBeGreaterThanOrEqual(1);
      expect(row?.next_attempt_at).toBeGreaterThan(Date.now());
      await github.setDown(false);
      expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
      db.run('UPDATE github_token_revocations SET next_attempt_at = ?', [Date.now()]);
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
      expect(db.all('SELECT id FROM github_token_revocations')).toEqual([]);
    } finally {
      db.close();
    }
  });
});
