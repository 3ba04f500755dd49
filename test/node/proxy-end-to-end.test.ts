import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nodeConfigFromEnv } from '../../src/config/node-config.ts';
import { silentLogger } from '../../src/core/log.ts';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import { parseProxyUpstreams } from '../../src/features/proxy/proxy-settings.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { PROXIED_JOB_SCRIPT, proxiedJob, runKeywayProxy } from '../support/proxied-job.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, runProcess, testConfig, writeTree } from './node-harness.ts';

const sha256Prefix = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

/**
 * `keyway proxy --upstream github -- node job.mjs` as a process, against the real Node broker
 * (its /proxy/github route, a github-app upstream), the test issuer and the fake GitHub API, all
 * on 127.0.0.1: the job makes gh-shaped and octokit-shaped calls and never holds a token.
 */
describe('keyway proxy end to end', () => {
  let ci: FakeCi;
  let github: FakeGitHub;
  let broker: NodeBroker;

  beforeAll(async () => {
    const issuer = new TestIssuer(inject('testIssuerBase'), `proxy-e2e-${crypto.randomUUID().slice(0, 8)}`);
    ci = await startFakeCi(issuer);
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    const root = writeTree({
      'policies/proxy.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository_id: "734201", ref: refs/heads/main }
grant:
  proxy:
    upstream: github
    allow:
      - { method: GET, path: "/repos/{repository}" }
      - { method: POST, path: "/repos/{repository}/issues/*/comments", permissions: { issues: write } }
      - { method: GET, path: "/repos/{repository}/issues", permissions: { issues: read } }
`,
    });
    broker = await startNodeBroker(
      testConfig(root, {
        issuer: OWN_URL_ISSUER,
        github: readGitHubAppSettings(github.settings),
        proxyUpstreams: parseProxyUpstreams('upstreams:\n  github:\n    auth: { kind: github-app }\n', {
          issuer: OWN_URL_ISSUER,
          allowHttpLoopback: true,
          githubApp: true,
        }),
      }),
      { log: silentLogger },
    );
  });
  afterAll(async () => {
    await Promise.all([ci?.close(), broker?.close()]);
  });

  it('the job’s gh- and octokit-shaped calls reach GitHub with an installation token the job never sees; a disallowed call gets the Keyway-Error refusal', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const before = (await github.calls()).length;
    const result = await runKeywayProxy(ci, ['--upstream', 'github', '--url', broker.url], directory, 0, [
      'GET /repos/acme/api',
      'POST /repos/acme/api/issues/12/comments',
      'GET /repos/acme/api gh',
      'DELETE /repos/acme/api',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const { env, calls } = proxiedJob(result, directory);

    expect(calls.map(({ call, status, keywayError }) => [call, status, keywayError])).toEqual([
      ['GET /repos/acme/api', 200, null],
      ['POST /repos/acme/api/issues/12/comments', 201, null],
      ['GET /repos/acme/api gh', 200, null],
      ['DELETE /repos/acme/api', 403, 'proxy_not_allowed'],
    ]);
    expect(JSON.parse(calls[0]?.body ?? '{}')).toEqual({ full_name: 'acme/api', private: true });
    expect(JSON.parse(calls[1]?.body ?? '{}')).toMatchObject({ body: 'Built by the job' });
    const refusal = JSON.parse(calls[3]?.body ?? '{}') as Record<string, unknown>;
    expect(refusal).toMatchObject({ error: 'access_denied' });
    expect(refusal).not.toHaveProperty('access_token');
    expect(result.stderr).toMatch(
      new RegExp(
        `^keyway: refused by the broker: DELETE /repos/acme/api → HTTP 403 proxy_not_allowed access_denied: .*\\(audit_event_id=${refusal['audit_event_id']}\\)$`,
        'm',
      ),
    );
    expect(result.stderr).toMatch(/^keyway: proxy: 4 request\(s\) forwarded \(1 answered with Keyway-Error\), 0 refused here$/m);

    // GitHub got exactly the three allowed calls, each with a live installation token keyway minted; the DELETE never left keyway.
    const made = (await github.calls()).slice(before).filter((call) => !call.path.endsWith('/access_tokens') && !call.path.endsWith('/installation'));
    expect(made.map(({ method, path, status }) => [method, path, status])).toEqual([
      // Addressed by the repository's id, which a rename does not move.
      ['GET', '/repositories/734201', 200],
      ['POST', '/repositories/734201/issues/12/comments', 201],
      ['GET', '/repositories/734201', 200],
    ]);
    for (const call of made) expect(call.auth).toMatch(/^token:[0-9a-f]{12}$/);

    // Not one of those tokens, nor any CI token, nor the token service's, is in the job's environment.
    const minted = new Set(made.map((call) => call.auth.slice('token:'.length)));
    const values = Object.values(env);
    expect(values.filter((value) => minted.has(sha256Prefix(value)))).toEqual([]);
    expect(values.join('\n')).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+|ghs_/);
    expect(values).not.toContain(ci.githubRequestToken);
    // GITHUB_TOKEN is the forwarder's per-run secret, not a token anyone issued (and not undefined on both sides).
    expect(env['KEYWAY_PROXY_SECRET']).toMatch(/^\S{16,}$/);
    expect(env['GITHUB_TOKEN']).toBe(env['KEYWAY_PROXY_SECRET']);
    // The CI token shows only in its mask, written as it was read.
    expect(result.stderr).toMatch(/^::add-mask::eyJ[\w-]+\.[\w-]+\.[\w-]+$/m);
    expect((result.stdout + result.stderr).replace(/^::add-mask::eyJ[\w-]+\.[\w-]+\.[\w-]+\n/gm, '')).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+|ghs_/);
  });

  it('a paginating client, octokit- or gh-shaped, follows GitHub’s next page back through the forwarder and keyway, with the secret it was given', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runKeywayProxy(ci, ['--upstream', 'github', '--url', broker.url], directory, 0, [
      'GET /repos/acme/api/issues',
      'GET /repos/acme/api/issues gh',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const { env, calls } = proxiedJob(result, directory);
    const pages = (base: string) => [1, 2, 3].map((page) => ({ url: `${base}/repos/acme/api/issues${page === 1 ? '' : `?page=${page}`}`, status: 200 }));
    // Each next page at the address the client called: the forwarder's own, or gh's api.github.localhost through HTTP_PROXY.
    expect(env['GITHUB_API_URL']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(calls[0]?.pages).toEqual(pages(env['GITHUB_API_URL']!));
    expect(calls[1]?.pages).toEqual(pages('http://api.github.localhost'));
    expect(JSON.parse(calls[1]?.body ?? '[]')).toEqual([{ number: 5, title: 'issue 5' }]);
    expect(result.stderr).toMatch(/^keyway: proxy: 6 request\(s\) forwarded \(0 answered with Keyway-Error\), 0 refused here$/m);
  });

  it('the Action’s proxy mode: a later step’s `keyway-proxy -- COMMAND` (the committed bundle) makes the same call through the broker', async () => {
    const step = actionStep(ci, { url: broker.url, proxy: 'github' });
    const installed = await step.run('main');
    expect(installed.code, installed.stdout).toBe(0);
    const command = readEnvironmentFile(step.files.GITHUB_OUTPUT)['proxy-command'] ?? '';
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runProcess(
      command,
      ['--', process.execPath, join(directory, 'job.mjs'), join(directory, 'env.json'), '0', 'POST /repos/acme/api/issues/3/comments'],
      {
        env: { ...step.env, GITHUB_TOKEN: 'ghs_the_steps_own_token' },
        cwd: directory,
      },
    );
    expect(result.code, result.stderr).toBe(0);
    const { env, calls } = proxiedJob(result, directory);
    expect(calls.map(({ call, status }) => [call, status])).toEqual([['POST /repos/acme/api/issues/3/comments', 201]]);
    expect((await github.calls()).at(-1)).toMatchObject({
      method: 'POST',
      path: '/repositories/734201/issues/3/comments',
      auth: expect.stringMatching(/^token:/),
    });
    expect(Object.values(env).join('\n')).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+|ghs_/);
  });
});

describe('KEYWAY_PROXY_UPSTREAMS_FILE', () => {
  const jwtUpstream = (audience: string): string =>
    `upstreams:\n  deploy: { url: "https://deploy.example", auth: { kind: keyway-jwt, audience: "${audience}" } }\n`;

  it("stops the Node broker at start when a keyway-jwt upstream's audience is its own issuer or under its /proxy, the default issuer included", () => {
    // No KEYWAY_ISSUER: the issuer is the port's on loopback, http://127.0.0.1:8787.
    const underProxy = writeTree({ 'upstreams.yaml': jwtUpstream('http://127.0.0.1:8787/proxy/deploy') });
    expect(() => nodeConfigFromEnv({ KEYWAY_PROXY_UPSTREAMS_FILE: 'upstreams.yaml' }, underProxy)).toThrow(
      /KEYWAY_PROXY_UPSTREAMS:2:\d+ upstreams\.deploy\.auth\.audience is under the broker's own \/proxy/,
    );
    const own = writeTree({ 'upstreams.yaml': jwtUpstream('https://keyway.example.com') });
    expect(() => nodeConfigFromEnv({ KEYWAY_ISSUER: 'https://keyway.example.com', KEYWAY_PROXY_UPSTREAMS_FILE: 'upstreams.yaml' }, own)).toThrow(
      /upstreams\.deploy\.auth\.audience is the broker's own issuer/,
    );
    // Another broker's issuer is an audience like any other.
    expect(nodeConfigFromEnv({ KEYWAY_PROXY_UPSTREAMS_FILE: 'upstreams.yaml' }, own).proxyUpstreams?.[0]?.auth).toEqual({
      kind: 'keyway-jwt',
      audience: 'https://keyway.example.com',
    });
  });
});
