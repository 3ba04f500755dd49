import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { parse } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { GITHUB_INSTALLATION_TOKEN_TYPE } from '../../src/cli/pipeline/revoke-token.ts';
import { verifyAccessToken } from '../../src/index.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { buildAction } from '../../scripts/build-action.ts';
import { startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { PROXIED_JOB_SCRIPT, proxiedJob } from '../support/proxied-job.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, runProcess, testConfig, writeTree, type Environment } from './node-harness.ts';

const ACTION = join(REPOSITORY_ROOT, 'action');
const AUDIENCE = 'https://deploy.acme.dev';

/** The committed bundle, run the way a runner runs it: node, INPUT_* variables, the runner's files, the token service. */
describe('the GitHub Action', () => {
  let ci: FakeCi;
  let broker: NodeBroker;

  beforeAll(async () => {
    const issuer = new TestIssuer(inject('testIssuerBase'), `action-${crypto.randomUUID().slice(0, 8)}`);
    ci = await startFakeCi(issuer);
    const root = writeTree({
      'policies/deploy.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_id: "734201", ref: refs/heads/main }
grant: { audience: ${AUDIENCE}, scopes: [deploy:write, artifacts:read], ttl: 10m }
`,
    });
    broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log: silentLogger });
  });
  afterAll(async () => {
    await Promise.all([ci?.close(), broker?.close()]);
  });
  beforeEach(() => {
    ci.requests.length = 0;
    ci.githubApiCalls.length = 0;
  });

  const runner = (inputs: Record<string, string>, extra: Environment = {}) => actionStep(ci, inputs, extra);

  it('action.yml: inputs url, audience, scope, github-token, repositories; outputs token, expires-at; the bundled files on a current Node runner', () => {
    const action = parse(readFileSync(join(ACTION, 'action.yml'), 'utf8')) as Record<string, Record<string, unknown>>;
    expect(Object.keys(action['inputs'] ?? {})).toEqual([
      'url',
      'audience',
      'scope',
      'github-token',
      'repositories',
      'github-token-map',
      'cloud',
      'role-arn',
      'aws-region',
      'service-account',
      'client-id',
      'tenant-id',
      'proxy',
    ]);
    expect(Object.keys(action['outputs'] ?? {})).toEqual(['token', 'expires-at', 'owners', 'proxy-command']);
    expect(action['runs']).toEqual({ using: 'node24', main: 'dist/main.mjs', post: 'dist/post.mjs' });
  });

  it('main: masks the token before anything else, sets the outputs, logs hash and audit id; post: nothing to revoke', async () => {
    const step = runner({ url: broker.url, audience: AUDIENCE, scope: 'deploy:write' });
    const started = Date.now();
    const result = await step.run('main');
    const stepSeconds = (Date.now() - started) / 1000;
    expect(result, result.stdout + result.stderr).toMatchObject({ code: 0 });
    expect(ci.requests).toEqual([{ source: 'github', audience: broker.url }]);

    const outputs = readEnvironmentFile(step.files.GITHUB_OUTPUT);
    const token = outputs['token'] ?? '';
    expect(result.stdout.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    expect(result.stdout.indexOf(`::add-mask::${token}`)).toBeLessThan(result.stdout.indexOf('granted'));
    expect(result.stderr).not.toContain(token);
    expect(result.stdout).toMatch(/keyway: granted: audit_event_id=\w{26} access_token_sha256=[0-9a-f]{64}/);

    const claims = await verifyAccessToken(token, { issuer: broker.url, audience: AUDIENCE, scopes: ['deploy:write'] });
    // The step reckons expires-at from expires_in when the answer arrives: never before exp (whole seconds), and later by at
    // most the time the answer took to arrive, which the step's own run time bounds however loaded the machine is.
    const lateBy = Date.parse(outputs['expires-at'] ?? '') / 1000 - (decodeJwt(token).exp ?? 0);
    expect(lateBy).toBeGreaterThanOrEqual(-1);
    expect(lateBy).toBeLessThanOrEqual(stepSeconds + 1);
    expect(claims.scope).toBe('deploy:write');
    expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');

    const post = await step.run('post');
    expect(post).toMatchObject({ code: 0, stdout: 'keyway: nothing to revoke: keyway access tokens expire on their own\n' });
  });

  it('main fails the step with an error annotation when the job lacks `permissions: id-token: write`', async () => {
    const step = runner({ url: broker.url }, { ACTIONS_ID_TOKEN_REQUEST_URL: undefined, ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined });
    const result = await step.run('main');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^::error::keyway: no CI token: .*permissions: id-token: write/m);
    expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
  });

  it('main reports a refusal with its RFC 6749 error and audit event id, and sets no output', async () => {
    const step = runner({ url: broker.url, scope: 'admin' });
    const result = await step.run('main');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^::error::keyway: refused \(HTTP 400\): invalid_scope: the requested scope is not granted$/m);
    expect(result.stdout).toMatch(/^keyway: audit_event_id=\w{26}$/m);
    expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
  });

  it("post revokes a GitHub installation token at the runner's GitHub, with the token itself, when the broker takes none back (it has no GitHub App)", async () => {
    const step = runner({ url: broker.url });
    const saved = JSON.stringify({ type: GITHUB_INSTALLATION_TOKEN_TYPE, token: 'ghs_installation', broker: broker.url });
    const result = await step.run('post', { STATE_revoke: saved });
    expect(result).toMatchObject({
      code: 0,
      stdout: "keyway: revoked the GitHub installation token at the runner's GitHub (the broker does not take GitHub tokens back)\n",
    });
    expect(ci.githubApiCalls).toEqual([{ method: 'DELETE', path: '/installation/token', authorization: 'Bearer ghs_installation' }]);
  });

  it('proxy mode asks for no token: it installs keyway-proxy on GITHUB_PATH for later steps, writes no secret, and a later step runs a command with it', async () => {
    const step = runner({ url: broker.url, proxy: 'github' });
    const result = await step.run('main');
    expect(result, result.stdout + result.stderr).toMatchObject({ code: 0 });
    expect(ci.requests).toEqual([]);
    const directory = readFileSync(step.files.GITHUB_PATH, 'utf8').trim();
    const command = join(directory, 'keyway-proxy');
    expect(readEnvironmentFile(step.files.GITHUB_OUTPUT)).toEqual({ 'proxy-command': command });
    expect(readFileSync(step.files.GITHUB_ENV, 'utf8')).toBe('');
    expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');
    expect(result.stdout).toContain('keyway: proxy mode: later steps run `keyway-proxy -- COMMAND`');

    // A later `run:` step: PATH with the runner's addition, the token service, the step's own GITHUB_TOKEN.
    const job = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const later = await runProcess(command, ['--', process.execPath, join(job, 'job.mjs'), join(job, 'env.json'), '5'], {
      env: { ...step.env, PATH: `${directory}:${process.env['PATH']}`, GITHUB_TOKEN: 'ghs_the_steps_own_token' },
      cwd: job,
    });
    expect(later.code, later.stderr).toBe(5);
    const { env } = proxiedJob(later, job);
    expect(env['GITHUB_API_URL']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Object.values(env).join('\n')).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+|ghs_the_steps_own_token/);
    expect(env).not.toHaveProperty('ACTIONS_ID_TOKEN_REQUEST_TOKEN');
    expect(ci.requests).toEqual([{ source: 'github', audience: broker.url }]);
    expect(later.stderr).toContain(`proxy: http://127.0.0.1:`);
  });

  it('proxy mode fails the step without `permissions: id-token: write`, or combined with a token input, installing nothing', async () => {
    for (const [inputs, extra, message] of [
      [
        { proxy: 'github' },
        { ACTIONS_ID_TOKEN_REQUEST_URL: undefined, ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined },
        /^::error::keyway: no CI token: .*id-token: write/m,
      ],
      [
        { proxy: 'github', scope: 'deploy:write', 'github-token': 'true' },
        {},
        /^::error::keyway: proxy mode asks the broker for no token: it does not combine with scope, github-token$/m,
      ],
      [
        { proxy: 'github', 'github-token-map': 'true', repositories: 'acme/api octo-org/site' },
        {},
        /^::error::keyway: proxy mode asks the broker for no token: it does not combine with repositories, github-token-map$/m,
      ],
      [{ proxy: 'GitHub API' }, {}, /^::error::keyway: the `proxy` input names one of the broker’s upstreams/m],
    ] as const) {
      const step = runner({ url: broker.url, ...inputs }, extra);
      const result = await step.run('main');
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(message);
      expect(readFileSync(step.files.GITHUB_PATH, 'utf8')).toBe('');
      expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
    }
  });

  it('the committed bundle is what `npm run build:action` makes from the source', async () => {
    const outdir = writeTree({});
    await buildAction(outdir);
    for (const file of ['main.mjs', 'post.mjs', 'proxy.mjs']) {
      expect(readFileSync(join(ACTION, 'dist', file), 'utf8'), `action/dist/${file} is stale: run npm run build:action`).toBe(
        readFileSync(join(outdir, file), 'utf8'),
      );
    }
  });
});
