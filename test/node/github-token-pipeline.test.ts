import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';
import { HANDED_BACK_HEADER } from '../../src/core/revocation/handed-back-tokens.ts';
import { GITHUB_INSTALLATION_TOKEN_TYPE } from '../../src/cli/pipeline/revoke-token.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { withOlderBroker } from '../support/older-broker.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, runProcess, testConfig, writeTree, type Environment } from './node-harness.ts';

/** A job step that lists what the token in $KEYWAY_TOKEN can see on the (fake) GitHub API. */
const LIST_REPOSITORIES = `fetch(process.env.GITHUB_API_URL + '/installation/repositories', { headers: { authorization: 'Bearer ' + process.env.KEYWAY_TOKEN, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' } })
  .then((response) => response.json()).then((body) => console.log('visible: ' + body.repositories.map((repository) => repository.name).join(',')))`;

/** The pipeline side with GitHub tokens: `keyway exchange --github-token` and the GitHub Action, against the real broker and the fake GitHub API. */
describe('GitHub tokens in a pipeline', () => {
  let ci: FakeCi;
  let broker: NodeBroker;
  let github: FakeGitHub;
  /** Another GitHub deployment than the App's: the runner's own (a GitHub Enterprise Server job, the App on github.com). */
  let runnerGitHub: FakeGitHub;
  let policies: Record<string, string>;
  /** A broker of the App on `github`, with the policy that grants acme/api and acme/docs, named `issuer`. */
  const startBroker = (issuer: string) =>
    startNodeBroker(testConfig(writeTree(policies), { issuer, github: readGitHubAppSettings(github.settings) }), { log: silentLogger });

  beforeAll(async () => {
    const issuer = new TestIssuer(inject('testIssuerBase'), `github-pipeline-${crypto.randomUUID().slice(0, 8)}`);
    ci = await startFakeCi(issuer);
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    runnerGitHub = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    policies = {
      'policies/release.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_id: "734201", ref: refs/heads/main }
grant:
  github: { repositories: [acme/api, acme/docs], permissions: { contents: write, pull_requests: write } }
  ttl: 10m
`,
    };
    broker = await startBroker(OWN_URL_ISSUER);
  });
  afterAll(async () => {
    await Promise.all([ci?.close(), broker?.close()]);
  });

  const tokenState = async (sha256: string) => (await github.tokens()).find((state) => state.sha256 === sha256);
  /** A GitHub Actions job's working directory and environment, its runner's GitHub API at `apiUrl`. */
  const job = (apiUrl: string): { cwd: string; env: Environment } => {
    const cwd = mkdtempSync(join(tmpdir(), 'keyway-job-'));
    return {
      cwd,
      env: {
        PATH: process.env['PATH'],
        HOME: cwd,
        GITHUB_ACTIONS: 'true',
        GITHUB_API_URL: apiUrl,
        ACTIONS_ID_TOKEN_REQUEST_URL: ci.githubRequestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.githubRequestToken,
      },
    };
  };
  /** Whatever reached the runner's GitHub API, which is not the App's: a token must never be sent there. */
  const sentToRunnerGitHub = async () => (await runnerGitHub.calls()).map((call) => `${call.method} ${call.path}`);

  it('keyway exchange --github-token --exec: the command sees exactly the repositories asked for, and the token is revoked when it ends', async () => {
    const { cwd, env } = job(github.apiUrl);
    const args = [
      'exchange',
      '--url',
      broker.url,
      '--github-token',
      '--repository',
      'acme/docs',
      '--scope',
      'contents:read',
      '--exec',
      '--',
      process.execPath,
      '-e',
      LIST_REPOSITORIES,
    ];
    const result = await runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), ...args], { env, cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('visible: docs\n');
    expect(result.stderr).toContain("keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n");
    const sha256 = /access_token_sha256=(\w+)/.exec(result.stderr)?.[1] ?? '';
    // The broker's revocation round, which the hand-back started, is over once this returns.
    await broker.revokeDueGitHubTokens();
    expect(await tokenState(sha256)).toMatchObject({ revoked: true, repositories: ['docs'], permissions: { contents: 'read', metadata: 'read' } });
    expect((await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).at(-1)?.body).toEqual({
      repositories: ['docs'],
      permissions: { contents: 'read' },
    });
  });

  it("keyway exchange --github-token --exec on a runner of another GitHub deployment: the token is revoked at the App's GitHub and never sent to the runner's", async () => {
    const { cwd, env } = job(runnerGitHub.apiUrl);
    const args = ['exchange', '--url', broker.url, '--github-token', '--repository', 'acme/docs', '--exec', '--', process.execPath, '-e', ''];
    const result = await runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), ...args], { env, cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(await sentToRunnerGitHub()).toEqual([]);
    await broker.revokeDueGitHubTokens();
    const sha256 = /access_token_sha256=(\w+)/.exec(result.stderr)?.[1] ?? '';
    expect(await tokenState(sha256)).toMatchObject({ revoked: true, repositories: ['docs'] });
    expect(result.stderr).toContain("keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n");
  });

  it("keyway exchange --github-token --exec with a broker that takes no GitHub token back: the token is revoked at the runner's GitHub when the command ends", async () => {
    await withOlderBroker(startBroker, async (older) => {
      const { cwd, env } = job(github.apiUrl);
      const args = ['exchange', '--url', older.url, '--github-token', '--repository', 'acme/docs', '--exec', '--', process.execPath, '-e', ''];
      const result = await runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), ...args], { env, cwd });
      expect(result.code, result.stderr).toBe(0);
      expect(older.revocations).toEqual(['POST /revoke']);
      expect(result.stderr).toContain("keyway: revoked the GitHub installation token at the runner's GitHub (the broker does not take GitHub tokens back)\n");
      // Revoked by the job itself, not by the broker, which was never handed it.
      const sha256 = /access_token_sha256=(\w+)/.exec(result.stderr)?.[1] ?? '';
      expect(await tokenState(sha256)).toMatchObject({ revoked: true, repositories: ['docs'] });
      const deletes = (await github.calls()).filter((call) => call.method === 'DELETE' && call.auth === `token:${sha256.slice(0, 12)}`);
      expect(deletes).toEqual([expect.objectContaining({ path: '/installation/token', status: 204 })]);
    });
  });

  it('keyway exchange refuses --repository without --github-token', async () => {
    const result = await runProcess(
      process.execPath,
      [join(REPOSITORY_ROOT, 'src/cli/main.ts'), 'exchange', '--url', broker.url, '--repository', 'acme/docs'],
      { env: { PATH: process.env['PATH'] } },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/needs --github-token/);
  });

  it("the GitHub Action on a runner of another GitHub deployment: main sets the GitHub token as its output, post hands it back to the broker, which revokes it at the App's GitHub", async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: runnerGitHub.apiUrl },
      { url: broker.url, 'github-token': 'true', repositories: 'acme/api', scope: 'pull_requests:write' },
    );
    const files = step.files;
    const main = await step.run('main');
    expect(main.code, main.stdout + main.stderr).toBe(0);
    const token = readEnvironmentFile(files.GITHUB_OUTPUT)['token'] ?? '';
    expect(token).toMatch(/^ghs_/);
    expect(main.stdout.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    expect(await github.repositoriesVisibleTo(token)).toEqual({ status: 200, names: ['api'] });

    const state = readEnvironmentFile(files.GITHUB_STATE)['revoke'] ?? '';
    const post = await step.run('post', { STATE_revoke: state });
    expect(await sentToRunnerGitHub()).toEqual([]);
    await broker.revokeDueGitHubTokens();
    expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
    expect(await tokenState(sha256Hex(token))).toMatchObject({ revoked: true, repositories: ['api'] });
    expect(post).toMatchObject({
      code: 0,
      stdout: "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n",
    });
  });

  it('the GitHub Action: a token whose outputs cannot be written is still left for the post step to hand back', async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: github.apiUrl },
      { url: broker.url, 'github-token': 'true', repositories: 'acme/api', scope: 'contents:read' },
    );
    // A directory where the runner's output file should be: the first output write fails.
    const main = await step.run('main', { GITHUB_OUTPUT: writeTree({ 'output/.keep': '' }) });
    expect(main.code).toBe(1);
    const saved = JSON.parse(readEnvironmentFile(step.files.GITHUB_STATE)['revoke'] ?? '{}') as { token?: string };
    expect(saved.token).toMatch(/^ghs_/);
    const post = await step.run('post', { STATE_revoke: JSON.stringify(saved) });
    expect(post).toMatchObject({
      code: 0,
      stdout: "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n",
    });
    await broker.revokeDueGitHubTokens();
    expect((await github.repositoriesVisibleTo(saved.token ?? '')).status).toBe(401);
  });

  it('the GitHub Action: post hands the token back to the broker main exchanged with, whatever its url input reads by then', async () => {
    // Where a later step pointed the input (`url: ${{ env.KEYWAY_URL }}`, KEYWAY_URL rewritten through GITHUB_ENV): a server that
    // answers as a broker taking GitHub tokens back, and keeps what it is sent.
    const received: string[] = [];
    const elsewhere = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push(`${request.method} ${request.url} ${body}`);
        response.writeHead(200, { [HANDED_BACK_HEADER]: GITHUB_INSTALLATION_TOKEN_TYPE }).end();
      });
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    try {
      const step = actionStep(
        { ...ci, githubApiUrl: github.apiUrl },
        { url: broker.url, 'github-token': 'true', repositories: 'acme/api', scope: 'contents:read' },
      );
      const main = await step.run('main');
      expect(main.code, main.stdout + main.stderr).toBe(0);
      const token = readEnvironmentFile(step.files.GITHUB_OUTPUT)['token'] ?? '';
      const post = await step.run('post', {
        STATE_revoke: readEnvironmentFile(step.files.GITHUB_STATE)['revoke'] ?? '',
        INPUT_URL: `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`,
      });
      expect(post).toMatchObject({
        code: 0,
        stdout: "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n",
      });
      expect(received).toEqual([]);
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
    } finally {
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });
});
