import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import type { LogFields } from '../../src/core/log.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION, githubForm, githubPolicies } from '../suites/github-exchange-suite.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { testConfig, writeTree } from './node-harness.ts';

/** What only the Node runtime shows: the timer on its own, restarts, the SQLite file, the audit log failing. */
describe('GitHub token revocation on Node', () => {
  const started: NodeBroker[] = [];
  const databases: SqliteFile[] = [];
  afterEach(async () => {
    for (const broker of started.splice(0)) await broker.close();
    for (const db of databases.splice(0)) db.close();
  });

  /** The broker's clock stands still until a test moves it; `logged` keeps what the broker logged. */
  async function setup() {
    const issuer = freshIssuer(inject('testIssuerBase'), 'github-node');
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    const root = writeTree(Object.fromEntries(Object.entries(githubPolicies(issuer)).map(([path, text]) => [`policies/${path}`, text])));
    const clock = { now: Date.now() };
    const logged: { message: string; fields: LogFields }[] = [];
    const keep = (message: string, fields: LogFields = {}) => void logged.push({ message, fields });
    const start = async (): Promise<NodeBroker> => {
      const config = testConfig(root, { github: readGitHubAppSettings(github.settings) });
      const broker = await startNodeBroker(config, { log: { info: keep, warn: keep, error: keep }, now: () => clock.now });
      started.push(broker);
      return broker;
    };
    let db: SqliteFile | undefined;
    const file = (): SqliteFile => {
      // Opened on first use: the file exists once the broker has started.
      if (db === undefined) {
        db = openSqliteFile(join(root, 'data', DATABASE_FILE), { readonly: true });
        databases.push(db);
      }
      return db;
    };
    /** The revocation schedule as the SQLite file holds it. */
    const pending = () =>
      file().all<{ attempts: number; next_attempt_at: number; github_expires_at: number }>(
        'SELECT attempts, next_attempt_at, github_expires_at FROM github_token_revocations',
      );
    /** Logged outcomes, as `outcome@attempts`. */
    const outcomes = () =>
      logged.filter((line) => line.message === 'github token revocation').map((line) => `${String(line.fields['outcome'])}@${String(line.fields['attempts'])}`);
    const deletes = async () => (await github.calls()).filter((call) => call.method === 'DELETE' && call.path === '/installation/token').length;
    return { root, issuer, github, start, clock, pending, outcomes, deletes, logged };
  }

  const exchange = async (broker: NodeBroker, issuer: TestIssuer, ref: string, claims: Record<string, unknown> = {}) =>
    postToken(
      { issuer: broker.config.issuer, request: (path, init) => fetch(`${broker.url}${path}`, init) },
      githubForm(await issuer.sign(ciClaims(issuer.url, broker.config.issuer, { ref, ...claims }))),
    );

  async function until(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('revokes on its own timer when the TTL passes, then deletes the sealed token', async () => {
    const { issuer, github, start, clock, pending } = await setup();
    const broker = await start();
    const token = (await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string;
    expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
    expect(pending()).toHaveLength(1);
    // The timer set at that exchange waits a real minute; the next exchange sets it again, from the clock, past the TTL.
    clock.now += 60_000;
    await exchange(broker, issuer, 'refs/heads/main');
    await until(async () => (await github.repositoriesVisibleTo(token)).status === 401);
    // Only the ten-minute token is left to revoke.
    await until(async () => pending().length === 1);
    expect(pending()[0]?.next_attempt_at).toBe(clock.now + 600_000);
  });

  it('keeps the schedule across a restart and revokes after it, the token sealed in the SQLite file', async () => {
    const { issuer, github, start, root, clock } = await setup();
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

    // It fell due while the broker was down: the restarted broker's timer revokes it at once.
    clock.now += 60_000;
    await start();
    await until(async () => (await github.repositoriesVisibleTo(token)).status === 401);
  });

  it('sends a sealed token to no API but its own: a row whose api_url was rewritten in the SQLite file opens for nothing', async () => {
    const { issuer, github, start, root, clock, pending, outcomes } = await setup();
    const first = await start();
    const token = (await exchange(first, issuer, 'refs/heads/short')).body['access_token'] as string;
    await first.close();
    started.splice(started.indexOf(first), 1);

    // Someone who may write the database, but holds no master key, points the row at a server of theirs.
    const received: string[] = [];
    const thief = createServer((request, response) => {
      received.push(`${request.method} ${request.url} ${request.headers.authorization ?? ''}`);
      response.writeHead(204).end();
    });
    await new Promise<void>((resolve) => thief.listen(0, '127.0.0.1', resolve));
    try {
      const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
      db.run('UPDATE github_token_revocations SET api_url = ?', [`http://127.0.0.1:${(thief.address() as AddressInfo).port}`]);
      db.close();

      clock.now += 60_000;
      await start();
      await until(async () => outcomes().length > 0);
      expect(received).toEqual([]);
      expect(outcomes()).toEqual(['unsealable@1']);
      expect(pending()).toEqual([]);
      // Not revoked either: GitHub expires it within its hour.
      expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
    } finally {
      await new Promise((resolve) => thief.close(resolve));
    }
  });

  it("revokes at once on revokeEndedWork the tokens of the job that completed and its run's without check_run_id, and no other; the run's end, all of the run's", async () => {
    const { issuer, github, start } = await setup();
    const broker = await start();
    const job = (checkRunId: string | undefined) => ({ kind: 'job', checkRunId, attempt: undefined }) as const;
    const token = async (claims: Record<string, unknown>) => (await exchange(broker, issuer, 'refs/heads/main', claims)).body['access_token'] as string;
    const ours = [await token({ run_id: '777', check_run_id: '5001' }), await token({ run_id: '777', check_run_id: '5001' })];
    // An older GHES token, without check_run_id: any job of its run ends it.
    const unmatched = await token({ run_id: '777' });
    const sibling = await token({ run_id: '777', check_run_id: '5002' });
    const theirs = await token({ run_id: '778', check_run_id: '5001' });
    const live = async (value: string) => (await github.repositoriesVisibleTo(value)).status === 200;
    expect(await broker.github?.revokeEndedWork('734201', '777', job('5001'))).toBe(3);
    for (const value of [...ours, unmatched]) await until(async () => !(await live(value)));
    expect([await live(sibling), await live(theirs)]).toEqual([true, true]);
    // A job whose check run is unknown can only end the run's tokens without one: none are left.
    expect(await broker.github?.revokeEndedWork('734201', '777', job(undefined))).toBe(0);
    expect(await broker.github?.revokeEndedWork('734201', '777', job('5002'))).toBe(1);
    await until(async () => !(await live(sibling)));
    expect(await live(theirs)).toBe(true);
    expect(await broker.github?.revokeEndedWork('734201', '777', job('5001'))).toBe(0);
    // Run 778 ends: its token goes whatever its job.
    expect(await broker.github?.revokeEndedWork('734201', '778', { kind: 'run', attempt: undefined })).toBe(1);
    await until(async () => !(await live(theirs)));
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

  it('revokes a minted token at once when its revocation cannot be scheduled, and answers without it', async () => {
    const { issuer, github, start, root } = await setup();
    const broker = await start();
    const saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    databases.push(saboteur);
    saboteur.exec("CREATE TRIGGER schedule_down BEFORE INSERT ON github_token_revocations BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
    try {
      const before = (await github.tokens()).length;
      const result = await exchange(broker, issuer, 'refs/heads/main');
      // The store's failure, not a fault of keyway's: retry later, as when the audit log cannot be written.
      expect(result).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
      expect(result.body).not.toHaveProperty('access_token');
      const [recorded] = saboteur.all<{ event: string }>('SELECT event FROM audit_events WHERE id = ?', [String(result.body['audit_event_id'])]);
      expect(JSON.parse(recorded?.event ?? '{}')).toMatchObject({
        reason: 'github_revocation_unavailable',
        decision: 'error',
        detail: expect.stringContaining('disk says no'),
      });
      // GitHub minted it; nothing would revoke it at its time, so it is taken back now.
      expect((await github.tokens()).slice(before)).toMatchObject([{ revoked: true, repositories: ['api', 'docs'] }]);
    } finally {
      saboteur.exec('DROP TRIGGER schedule_down');
    }
  });

  it('revokes every token due in one round, more than one batch of them', async () => {
    const { issuer, github, start, clock, pending, outcomes } = await setup();
    const broker = await start();
    const tokens: string[] = [];
    for (let index = 0; index < 51; index += 1) tokens.push((await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string);
    expect(pending()).toHaveLength(51);
    clock.now += 60_000;
    await broker.revokeDueGitHubTokens();
    expect(pending()).toEqual([]);
    expect(outcomes()).toEqual(Array.from({ length: 51 }, () => 'revoked@1'));
    expect((await github.repositoriesVisibleTo(tokens.at(-1)!)).status).toBe(401);
  });

  it('retries a failed revocation with backoff while GitHub is down, and revokes once it is back', async () => {
    const { issuer, github, start, clock, pending, outcomes } = await setup();
    const broker = await start();
    const token = (await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string;
    await github.setDown(true);
    clock.now += 60_000;
    await broker.revokeDueGitHubTokens();
    expect(pending()).toMatchObject([{ attempts: 1, next_attempt_at: clock.now + 5000 }]);
    await github.setDown(false);
    // Not before its backoff has passed.
    await broker.revokeDueGitHubTokens();
    expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
    clock.now += 5000;
    await broker.revokeDueGitHubTokens();
    expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
    expect(pending()).toEqual([]);
    expect(outcomes()).toEqual(['retrying@1', 'revoked@2']);
  });

  it("backs off 5 s, doubling, and gives up after 8 attempts, leaving the token to GitHub's expiry", async () => {
    const { issuer, github, start, clock, pending, outcomes, deletes } = await setup();
    const broker = await start();
    const token = (await exchange(broker, issuer, 'refs/heads/short')).body['access_token'] as string;
    await github.setDown(true);
    clock.now += 60_000;
    for (let attempt = 1; attempt < 8; attempt += 1) {
      await broker.revokeDueGitHubTokens();
      const [row] = pending();
      expect(row).toMatchObject({ attempts: attempt, next_attempt_at: clock.now + 5000 * 2 ** (attempt - 1) });
      clock.now = row?.next_attempt_at ?? Number.NaN;
    }
    await broker.revokeDueGitHubTokens();
    expect(pending()).toEqual([]);
    expect(await deletes()).toBe(8);
    expect(outcomes()).toEqual([...Array.from({ length: 7 }, (_, index) => `retrying@${index + 1}`), 'gave_up@8']);
    // Nobody revoked it: it lives until GitHub expires it.
    await github.setDown(false);
    expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
  });

  it("never retries past GitHub's own expiry: a failure that close to it gives up at once", async () => {
    const { issuer, github, start, clock, pending, outcomes, deletes } = await setup();
    const broker = await start();
    await exchange(broker, issuer, 'refs/heads/short');
    const [row] = pending();
    await github.setDown(true);
    // The next attempt, 5 s on, would come after GitHub's expiry.
    clock.now = (row?.github_expires_at ?? Number.NaN) - 4000;
    await broker.revokeDueGitHubTokens();
    expect(pending()).toEqual([]);
    expect(await deletes()).toBe(1);
    expect(outcomes()).toEqual(['gave_up@1']);
  });
  it('waits before the next round after one that failed, rather than asking GitHub again at once while the schedule cannot be written', async () => {
    const { root, issuer, github, start, clock, logged, deletes } = await setup();
    const broker = await start();
    await exchange(broker, issuer, 'refs/heads/short');
    // GitHub fails the revocation, and the schedule can be neither moved on (retry) nor cleared: the row stays due.
    const saboteur = openSqliteFile(join(root, 'data', DATABASE_FILE));
    databases.push(saboteur);
    for (const change of ['UPDATE', 'DELETE']) {
      saboteur.exec(`CREATE TRIGGER keep_revocations_${change} BEFORE ${change} ON github_token_revocations BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    }
    await github.setDown(true);
    clock.now += 60_000;
    await broker.revokeDueGitHubTokens();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const failed = logged.filter((line) => line.message === 'github token revocation round failed');
    expect({ rounds: failed.length, deletes: await deletes() }).toEqual({ rounds: 1, deletes: 1 });
    for (const change of ['UPDATE', 'DELETE']) saboteur.exec(`DROP TRIGGER keep_revocations_${change}`);
  });
});
