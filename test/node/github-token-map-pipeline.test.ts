import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { withOlderBroker } from '../support/older-broker.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, runProcess, testConfig, writeTree, type Environment } from './node-harness.ts';

const OCTO_INSTALLATION = {
  id: 7270,
  owner: 'Octo-Org',
  repositories: [{ id: 890101, name: 'site' }],
  permissions: { contents: 'write', metadata: 'read' },
};

/** An account whose login is the name of a member every object has (valibot's records skip it as a key). */
const CONSTRUCTOR_INSTALLATION = {
  id: 7271,
  owner: 'constructor',
  repositories: [{ id: 890102, name: 'site' }],
  permissions: { contents: 'read', metadata: 'read' },
};

/** A job step that lists, for each owner's variable, what its token can see on the (fake) GitHub API. */
const LIST_REPOSITORIES = `const list = (name) => fetch(process.env.GITHUB_API_URL + '/installation/repositories', { headers: { authorization: 'Bearer ' + process.env[name], accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' } })
  .then((response) => response.json()).then((body) => name + ': ' + body.repositories.map((repository) => repository.name).join(','));
Promise.all(['KEYWAY_GITHUB_TOKEN_ACME', 'KEYWAY_GITHUB_TOKEN_OCTO_ORG'].map(list)).then((lines) => console.log(lines.join('\\n')))`;

/** Issue 19 on the pipeline side: `keyway exchange --github-token-map` and the Action's github-token-map, as processes. */
describe('GitHub token maps in a pipeline', () => {
  let ci: FakeCi;
  let broker: NodeBroker;
  let github: FakeGitHub;
  let policies: Record<string, string>;
  /** A broker of the App on `github`, with a policy for each owner, named `issuer`. */
  const startBroker = (issuer: string) =>
    startNodeBroker(testConfig(writeTree(policies), { issuer, github: readGitHubAppSettings(github.settings) }), { log: silentLogger });

  beforeAll(async () => {
    const issuer = new TestIssuer(inject('testIssuerBase'), `github-map-pipeline-${crypto.randomUUID().slice(0, 8)}`);
    ci = await startFakeCi(issuer);
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    await github.install(OCTO_INSTALLATION);
    await github.install(CONSTRUCTOR_INSTALLATION);
    const policy = (grant: string) =>
      `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n` +
      `match: { repository_id: "734201", ref: refs/heads/main }\ngrant:\n  github: ${grant}\n  ttl: 10m\n`;
    policies = {
      'policies/acme.yaml': policy('{ owner: acme, repositories: [api, docs], permissions: { contents: write } }'),
      'policies/constructor.yaml': policy('{ owner: constructor, owner_id: "72710", repositories: [site], permissions: { contents: read } }'),
      'policies/octo.yaml': policy('{ owner: Octo-Org, owner_id: "72700", repositories: [site], permissions: { contents: read } }'),
    };
    broker = await startBroker(OWN_URL_ISSUER);
  });
  afterAll(async () => {
    await Promise.all([ci?.close(), broker?.close()]);
  });

  const jobEnvironment = (): Environment => {
    const cwd = mkdtempSync(join(tmpdir(), 'keyway-job-'));
    return {
      PATH: process.env['PATH'],
      HOME: cwd,
      GITHUB_ACTIONS: 'true',
      GITHUB_API_URL: github.apiUrl,
      ACTIONS_ID_TOKEN_REQUEST_URL: ci.githubRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.githubRequestToken,
    };
  };
  const keyway = (args: readonly string[], env: Environment) => runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), ...args], { env });
  const tokenStates = async (hashes: readonly string[]) => (await github.tokens()).filter((state) => hashes.includes(state.sha256));

  it('--github-token-map --exec: the command gets one variable per owner, each token masked first and revoked when it ends', async () => {
    const args = [
      'exchange',
      '--url',
      broker.url,
      '--github-token-map',
      '--repository',
      'acme/docs',
      '--repository',
      'octo-org/site',
      '--scope',
      'contents:read',
    ];
    const result = await keyway([...args, '--exec', '--', process.execPath, '-e', LIST_REPOSITORIES], jobEnvironment());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('KEYWAY_GITHUB_TOKEN_ACME: docs\nKEYWAY_GITHUB_TOKEN_OCTO_ORG: site\n');
    const hashes = [...result.stderr.matchAll(/owner=([\w-]+) access_token_sha256=(\w+)/g)].map((match) => match[2]!);
    expect([...result.stderr.matchAll(/owner=([\w-]+) access_token_sha256/g)].map((match) => match[1])).toEqual(['acme', 'octo-org']);
    // Masked before any other line: the masks come first, and no token appears outside them.
    const masks = result.stderr.split('\n').filter((line) => line.startsWith('::add-mask::'));
    // The CI token's, as it was read, then each owner's token.
    expect(masks).toEqual([
      expect.stringMatching(/^::add-mask::eyJ[\w-]+\.[\w-]+\.[\w-]+$/),
      expect.stringMatching(/^::add-mask::ghs_/),
      expect.stringMatching(/^::add-mask::ghs_/),
    ]);
    expect(result.stderr.indexOf('::add-mask::')).toBeLessThan(result.stderr.indexOf('granted:'));
    expect(result.stderr).toContain("keyway: acme: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n");
    expect(result.stderr).toContain("keyway: octo-org: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n");
    // The broker's revocation round, which the hand-backs started, is over once this returns.
    await broker.revokeDueGitHubTokens();
    expect(await tokenStates(hashes)).toEqual([
      expect.objectContaining({ revoked: true, repositories: ['docs'] }),
      expect.objectContaining({ revoked: true, repositories: ['site'] }),
    ]);
  });

  it("--github-token-map --exec with a broker that takes no GitHub token back: each token is revoked at the runner's GitHub when the command ends", async () => {
    await withOlderBroker(startBroker, async (older) => {
      const args = ['exchange', '--url', older.url, '--github-token-map', '--repository', 'acme/docs', '--repository', 'octo-org/site'];
      const result = await keyway([...args, '--exec', '--', process.execPath, '-e', ''], jobEnvironment());
      expect(result.code, result.stderr).toBe(0);
      expect(older.revocations).toEqual(['POST /revoke', 'POST /revoke']);
      for (const owner of ['acme', 'octo-org']) {
        expect(result.stderr).toContain(
          `keyway: ${owner}: revoked the GitHub installation token at the runner's GitHub (the broker does not take GitHub tokens back)\n`,
        );
      }
      // Revoked by the job itself, not by the broker, which was never handed them.
      const hashes = [...result.stderr.matchAll(/owner=[\w-]+ access_token_sha256=(\w+)/g)].map((match) => match[1]!);
      expect(await tokenStates(hashes)).toEqual([
        expect.objectContaining({ revoked: true, repositories: ['docs'] }),
        expect.objectContaining({ revoked: true, repositories: ['site'] }),
      ]);
    });
  });

  it('--github-token-map prints export lines for eval; a refused owner gets exit 4, its name, and no token at all', async () => {
    const printed = await keyway(
      ['exchange', '--url', broker.url, '--github-token-map', '--repository', 'acme/api', '--repository', 'Octo-Org/site'],
      jobEnvironment(),
    );
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^export KEYWAY_GITHUB_TOKEN_ACME='ghs_[\w-]+'\nexport KEYWAY_GITHUB_TOKEN_OCTO_ORG='ghs_[\w-]+'\n$/);

    const refused = await keyway(
      ['exchange', '--url', broker.url, '--github-token-map', '--repository', 'acme/api', '--repository', 'octo-org/site', '--scope', 'contents:write'],
      jobEnvironment(),
    );
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/invalid_scope: owner octo-org: /);
    expect(refused.stderr).not.toMatch(/ghs_/);
    expect(refused.stderr.split('\n').filter((line) => line.startsWith('::add-mask::'))).toEqual([
      expect.stringMatching(/^::add-mask::eyJ[\w-]+\.[\w-]+\.[\w-]+$/),
    ]);
  });

  it('the GitHub Action: github-token-map sets token-<owner> outputs, masked, and post revokes every one', async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: github.apiUrl },
      { url: broker.url, 'github-token-map': 'true', repositories: 'acme/api Octo-Org/site', scope: 'contents:read' },
    );
    const main = await step.run('main');
    expect(main.code, main.stdout + main.stderr).toBe(0);
    const outputs = readEnvironmentFile(step.files.GITHUB_OUTPUT);
    expect(outputs['owners']).toBe('acme octo-org');
    const tokens = [outputs['token-acme'] ?? '', outputs['token-octo-org'] ?? ''];
    for (const token of tokens) {
      expect(token).toMatch(/^ghs_/);
      expect(main.stdout.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    }
    expect(Date.parse(outputs['expires-at-acme'] ?? '')).toBeGreaterThan(Date.now());
    expect(await github.repositoriesVisibleTo(tokens[0]!)).toEqual({ status: 200, names: ['api'] });
    expect(await github.repositoriesVisibleTo(tokens[1]!)).toEqual({ status: 200, names: ['site'] });

    const post = await step.run('post', { STATE_revoke: readEnvironmentFile(step.files.GITHUB_STATE)['revoke'] ?? '' });
    expect(post).toMatchObject({
      code: 0,
      stdout: "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n".repeat(2),
    });
    await broker.revokeDueGitHubTokens();
    for (const token of tokens) expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
  });

  it('the GitHub Action: an owner whose login is constructor gets its token-constructor output like any other', async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: github.apiUrl },
      { url: broker.url, 'github-token-map': 'true', repositories: 'acme/api Constructor/site', scope: 'contents:read' },
    );
    const main = await step.run('main');
    expect(main.code, main.stdout + main.stderr).toBe(0);
    const outputs = readEnvironmentFile(step.files.GITHUB_OUTPUT);
    expect(outputs['owners']).toBe('acme constructor');
    expect(await github.repositoriesVisibleTo(outputs['token-constructor'] ?? '')).toEqual({ status: 200, names: ['site'] });
  });

  it('the GitHub Action: a map whose outputs cannot be written still leaves every token for the post step to revoke', async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: github.apiUrl },
      { url: broker.url, 'github-token-map': 'true', repositories: 'acme/api Octo-Org/site', scope: 'contents:read' },
    );
    // A directory where the runner's output file should be: the first output write fails.
    const main = await step.run('main', { GITHUB_OUTPUT: writeTree({ 'output/.keep': '' }) });
    expect(main.code).toBe(1);
    const saved = JSON.parse(readEnvironmentFile(step.files.GITHUB_STATE)['revoke'] ?? '{}') as { tokens?: string[] };
    expect(saved.tokens).toHaveLength(2);
    const post = await step.run('post', { STATE_revoke: JSON.stringify(saved) });
    expect(post).toMatchObject({
      code: 0,
      stdout: "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n".repeat(2),
    });
    await broker.revokeDueGitHubTokens();
    for (const token of saved.tokens ?? []) expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
  });

  it('the GitHub Action: post hands back every token of a map though the broker refuses one of them', async () => {
    const step = actionStep(
      { ...ci, githubApiUrl: github.apiUrl },
      { url: broker.url, 'github-token-map': 'true', repositories: 'acme/api Octo-Org/site', scope: 'contents:read' },
    );
    const main = await step.run('main');
    expect(main.code, main.stdout + main.stderr).toBe(0);
    const saved = JSON.parse(readEnvironmentFile(step.files.GITHUB_STATE)['revoke'] ?? '{}') as { tokens: string[] };
    // First in the list, a token the broker refuses to revoke (400): one that claims a DPoP key, sent with no proof of it.
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const bound = `${part({ alg: 'ES256', typ: 'JWT' })}.${part({ cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } })}.c2ln`;
    const post = await step.run('post', { STATE_revoke: JSON.stringify({ ...saved, tokens: [bound, ...saved.tokens] }) });
    expect(post).toMatchObject({
      code: 0,
      stdout:
        '::warning::keyway: could not revoke the token: the broker answered 400 to the revocation\n' +
        "keyway: handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API\n".repeat(2),
    });
    await broker.revokeDueGitHubTokens();
    for (const token of saved.tokens) expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
  });
});
