import { decodeJwt } from 'jose';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { verifyAccessToken } from '../../src/index.ts';
import { KUBERNETES_TOKEN_FILE, selectCiTokenSource } from '../../src/cli/pipeline/ci-token-sources.ts';
import { fakeBuildkiteAgent, startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { startFlakyProxy, type FlakyProxy } from '../support/flaky-proxy.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { REPOSITORY_ROOT, runProcess, testConfig, writeTree, type Environment, type ProcessResult } from './node-harness.ts';

const AUDIENCE = 'https://deploy.acme.dev';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The real `keyway exchange` process against the real Node broker on 127.0.0.1, behind a proxy
 * that can fail on demand, with fakes of the CI systems' token services.
 */
describe('keyway exchange', () => {
  let issuer: TestIssuer;
  let ci: FakeCi;
  let proxy: FlakyProxy;
  let broker: NodeBroker;
  let audit: SqliteAuditStore;
  let root: string;
  let bin: string;

  beforeAll(async () => {
    issuer = new TestIssuer(inject('testIssuerBase'), `exchange-cli-${crypto.randomUUID().slice(0, 8)}`);
    ci = await startFakeCi(issuer);
    proxy = await startFlakyProxy();
    root = writeTree({
      'policies/deploy.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: refs/heads/main
grant:
  audience: [${AUDIENCE}, https://artifacts.acme.dev]
  scopes: [deploy:write, artifacts:read]
  ttl: 10m
`,
      // The release repository's operators let a refused pipeline learn which claims failed (never their values).
      'policies/release.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
diagnostics: claim-names
match:
  repository_owner_id: "1200934"
  repository_id: "99"
  ref: refs/tags/release
grant:
  audience: ${AUDIENCE}
`,
    });
    // The broker's public URL is the proxy's, as behind a load balancer: discovery must name it.
    const config = testConfig(root, { issuer: proxy.url });
    broker = await startNodeBroker(config, { log: silentLogger });
    proxy.target = broker.url;
    audit = new SqliteAuditStore(openSqliteFile(join(config.dataDir, DATABASE_FILE)));
    bin = writeTree({ 'buildkite-agent': fakeBuildkiteAgent(ci.url) });
    chmodSync(join(bin, 'buildkite-agent'), 0o755);
  });
  afterAll(async () => {
    await Promise.all([ci?.close(), proxy?.close(), broker?.close()]);
  });
  beforeEach(() => {
    proxy.faults.length = 0;
    proxy.tokenRequests = 0;
    proxy.redirects.clear();
    ci.requests.length = 0;
  });

  /** A job's environment: nothing from the test runner's own, a fresh HOME, TMPDIR and working directory. */
  function jobEnv(extra: Record<string, string> = {}): { env: Environment; cwd: string } {
    const cwd = mkdtempSync(join(tmpdir(), 'keyway-job-'));
    return { cwd, env: { PATH: `${bin}:${process.env['PATH'] ?? ''}`, HOME: cwd, TMPDIR: cwd, ...extra } };
  }
  const githubEnv = (extra: Record<string, string> = {}) =>
    jobEnv({ GITHUB_ACTIONS: 'true', ACTIONS_ID_TOKEN_REQUEST_URL: ci.githubRequestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.githubRequestToken, ...extra });

  function keyway(args: readonly string[], job: { env: Environment; cwd: string }, stdin?: string): Promise<ProcessResult> {
    return runProcess(process.execPath, [join(process.cwd(), 'src/cli/main.ts'), 'exchange', ...args], { ...job, ...(stdin === undefined ? {} : { stdin }) });
  }
  const logged = (stderr: string, name: string) => new RegExp(`${name}=(\\S+)`).exec(stderr)?.[1];

  it('on GitHub Actions: asks the token service for the broker audience, prints only the token, logs its hash and the audit id', async () => {
    const result = await keyway(['--url', proxy.url, '--audience', AUDIENCE, '--scope', 'deploy:write'], githubEnv());
    expect(result.stderr).toMatch(/CI token from GitHub Actions/);
    expect(result.code).toBe(0);
    expect(ci.requests).toEqual([{ source: 'github', audience: proxy.url }]);

    const token = result.stdout.trim();
    expect(result.stdout).toBe(`${token}\n`);
    // The runner reads workflow commands on standard error too: the token is masked, and that is its only trace there.
    expect(result.stderr.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    expect(logged(result.stderr, 'access_token_sha256')).toBe(sha256(token));

    // Downstream, the way a service checks it: the broker's remote JWKS.
    const claims = await verifyAccessToken(token, { issuer: proxy.url, audience: AUDIENCE, scopes: ['deploy:write'] });
    expect(claims.scope).toBe('deploy:write');
    const event = await audit.get(logged(result.stderr, 'audit_event_id') ?? '');
    expect(event).toMatchObject({ decision: 'granted', issued: { jti: claims.jti, aud: [AUDIENCE], scope: ['deploy:write'] } });
    // The CI token's hash in the job log matches the audit record's.
    expect(result.stderr).toContain(`sha256 ${event?.subject_token?.sha256}`);
  });

  it('on GitHub Actions, printing the token: the step log (both streams, in the order written) masks it before the token', async () => {
    const job = githubEnv();
    const log = join(job.cwd, 'step.log');
    const fd = openSync(log, 'w');
    try {
      const args = [join(process.cwd(), 'src/cli/main.ts'), 'exchange', '--url', proxy.url];
      const child = spawn(process.execPath, args, { cwd: job.cwd, env: job.env as NodeJS.ProcessEnv, stdio: ['ignore', fd, fd] });
      const [code] = (await once(child, 'close')) as [number];
      expect(code).toBe(0);
    } finally {
      closeSync(fd);
    }
    const lines = readFileSync(log, 'utf8').split('\n');
    const token = lines.find((line) => line.startsWith('eyJ')) ?? '';
    expect(token).not.toBe('');
    expect(lines.filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`, token]);
  });

  it('outside GitHub Actions, prints the token with no workflow command', async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url));
    const result = await keyway(['--url', proxy.url], jobEnv({ CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: token }));
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^eyJ\S+\n$/);
    expect(result.stderr).not.toContain('::add-mask::');
  });

  it('on GitHub Actions without `permissions: id-token: write`: says so and exits 3 without calling the broker', async () => {
    const result = await keyway(['--url', proxy.url], jobEnv({ GITHUB_ACTIONS: 'true' }));
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('permissions: id-token: write');
    expect(proxy.tokenRequests).toBe(0);
  });

  it('--github-output and --github-env: masks the token first, then writes it in the runner file format', async () => {
    const job = githubEnv();
    const output = join(job.cwd, 'github_output');
    const environment = join(job.cwd, 'github_env');
    writeFileSync(output, '');
    writeFileSync(environment, '');
    job.env['GITHUB_OUTPUT'] = output;
    job.env['GITHUB_ENV'] = environment;
    const result = await keyway(['--url', proxy.url, '--github-output', 'token', '--github-env', 'DEPLOY_TOKEN'], job);
    expect(result.code).toBe(0);

    expect(result.stdout).toBe('');
    // The CI token is masked as it is read, the access token before it is written.
    const [ciToken = '', token = '', ...more] = [...result.stderr.matchAll(/^::add-mask::(\S+)$/gm)].map((mask) => mask[1]);
    expect(more).toEqual([]);
    expect(result.stderr).toMatch(new RegExp(`^keyway: CI token from GitHub Actions .*, sha256 ${sha256(ciToken)}$`, 'm'));
    expect(token).toMatch(/^eyJ/);
    expect(result.stderr.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    expect(readFileSync(output, 'utf8')).toMatch(new RegExp(`^token<<(ghadelimiter_[0-9a-f-]+)\\n${token}\\n\\1\\n$`));
    expect(readFileSync(environment, 'utf8')).toMatch(new RegExp(`^DEPLOY_TOKEN<<(ghadelimiter_[0-9a-f-]+)\\n${token}\\n\\1\\n$`));
    expect(logged(result.stderr, 'access_token_sha256')).toBe(sha256(token));
  });

  it('refuses a --github-output name that is not an output name, alone or as a token map’s prefix: a newline in it would write another output', async () => {
    const job = githubEnv();
    const output = join(job.cwd, 'github_output');
    writeFileSync(output, '');
    job.env['GITHUB_OUTPUT'] = output;
    const before = proxy.tokenRequests;
    for (const args of [
      ['--github-output', 'token\nstolen'],
      ['--github-output', 'a token'],
      ['--github-token-map', '--repository', 'acme/api', '--github-output', 'token\nstolen'],
    ]) {
      expect(await keyway(['--url', proxy.url, ...args], job)).toMatchObject({ code: 2, stderr: expect.stringContaining('is not a valid step output name') });
    }
    expect(readFileSync(output, 'utf8')).toBe('');
    expect(proxy.tokenRequests).toBe(before);
  });

  it('--exec: the command gets the token in its environment, keyway exits with its status, and no file holds the token', async () => {
    const job = githubEnv();
    const child = `process.stdout.write('child-token=' + process.env.KEYWAY_TOKEN + '\\n'); process.exit(7)`;
    const result = await keyway(['--url', proxy.url, '--exec', '--', process.execPath, '-e', child], job);
    expect(result.code).toBe(7);
    const token = /^child-token=(\S+)$/m.exec(result.stdout)?.[1] ?? '';
    expect(logged(result.stderr, 'access_token_sha256')).toBe(sha256(token));
    await verifyAccessToken(token, { issuer: proxy.url, audience: AUDIENCE });
    expect(result.stdout.replace(`child-token=${token}\n`, '')).toBe('');
    // In GitHub Actions the token is masked before the command runs, so whatever it prints is masked in the log.
    expect(result.stderr.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    // Nowhere on disk: the job's HOME, TMPDIR and working directory, nor the broker's data directory.
    const files = [...walk(job.cwd), ...walk(root)];
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(readFileSync(file).includes(token), file).toBe(false);
  });

  it('--exec revokes the keyway token at the broker when the command ends, whatever its status', async () => {
    const child = `process.stdout.write('child-token=' + process.env.KEYWAY_TOKEN + '\\n'); process.exit(3)`;
    const result = await keyway(['--url', proxy.url, '--exec', '--', process.execPath, '-e', child], githubEnv());
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('keyway: revoked the keyway token');
    const token = /^child-token=(\S+)$/m.exec(result.stdout)?.[1] ?? '';
    const { jti } = decodeJwt(token);
    const { records } = await audit.query({ jti: String(jti), reasons: ['token_revoked'], limit: 10, order: 'desc' });
    expect(records.map((record) => record.event)).toEqual([
      expect.objectContaining({ reason: 'token_revoked', detail: 'revoked by its holder', subject_token: expect.objectContaining({ sha256: sha256(token) }) }),
    ]);
  });

  it('--exec does not follow a redirect answered to the revocation: the token goes nowhere else, and the log says why it stays valid', async () => {
    const elsewhere: string[] = [];
    const other = await serveOnLoopback(async (request) => {
      elsewhere.push(`${request.method} ${new URL(request.url).pathname} ${await request.text()}`);
      return new Response(null, { status: 200 });
    });
    try {
      proxy.redirects.set('/revoke', `${other.base}/revoke`);
      const child = `process.stdout.write('child-token=' + process.env.KEYWAY_TOKEN + '\\n')`;
      const result = await keyway(['--url', proxy.url, '--exec', '--', process.execPath, '-e', child], githubEnv());
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(
        /keyway: could not revoke the token: POST http:\/\/127\.0\.0\.1:\d+\/revoke answered a 307 redirect to http:\/\/127\.0\.0\.1:\d+; keyway does not follow redirects with a token\n/,
      );
      expect(result.stderr).not.toContain('revoked the keyway token');
      expect(elsewhere).toEqual([]);
      // Not revoked: the broker never had the request, so the token's jti has no revocation.
      const { jti } = decodeJwt(/^child-token=(\S+)$/m.exec(result.stdout)?.[1] ?? '');
      expect((await audit.query({ jti: String(jti), reasons: ['token_revoked'], limit: 10, order: 'desc' })).records).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('--exec passes on 127 when the command does not exist', async () => {
    const result = await keyway(['--url', proxy.url, '--exec', '--', 'keyway-no-such-command'], githubEnv());
    expect(result.code).toBe(127);
    expect(result.stderr).toContain('cannot run keyway-no-such-command');
  });

  it('a refusal: exit 4 with the RFC 6749 error, the audit event id, the claims sent and what the operator shares; a 4xx is never retried', async () => {
    const result = await keyway(['--url', proxy.url, '--scope', 'admin'], githubEnv());
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('refused (HTTP 400): invalid_scope: the requested scope is not granted');
    const id = logged(result.stderr, 'audit_event_id') ?? '';
    expect(await audit.get(id)).toMatchObject({ decision: 'denied', reason: 'scope_not_granted' });
    expect(result.stderr).toContain('keyway: claims of the CI token sent (decoded here, not verified):\nkeyway:   iss: ');
    expect(result.stderr).toContain('keyway:   repository_id: "734201"\n');
    expect(result.stderr).toContain(
      `share nothing more with pipelines (diagnostics: none, the default); an operator with audit:read sees the whole explanation: keyway audit explain ${id}`,
    );
    expect(proxy.tokenRequests).toBe(1);
  });

  it("a refusal whose closest policy shares claim names: the log names the claims that failed, never the policy's values", async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url, { repository_id: '99', ref: 'refs/tags/v1' }));
    const result = await keyway(['--url', proxy.url], jobEnv({ GITLAB_CI: 'true', KEYWAY_ID_TOKEN: token }));
    expect(result.code).toBe(4);
    const id = logged(result.stderr, 'audit_event_id') ?? '';
    expect(await audit.get(id)).toMatchObject({ decision: 'denied', reason: 'no_policy_matched' });
    expect(result.stderr).toContain('keyway:   ref: "refs/tags/v1"\n');
    expect(result.stderr).toContain(
      '(diagnostics: claim-names): claims that failed for the closest allow policy: ref\nkeyway: deny guardrails that fired: none',
    );
    expect(result.stderr).toContain(`keyway audit explain ${id}`);
    expect(result.stderr).not.toContain('refs/tags/release');
  });

  it("a refusal's log shows the claims sent but not an e-mail address: job logs can be public, GitLab's user_email is not", async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url, { user_email: 'jane.doe@acme.dev', user_login: 'jane' }));
    const result = await keyway(['--url', proxy.url, '--scope', 'admin'], jobEnv({ GITLAB_CI: 'true', KEYWAY_ID_TOKEN: token }));
    expect(result.code).toBe(4);
    expect(await audit.get(logged(result.stderr, 'audit_event_id') ?? '')).toMatchObject({ decision: 'denied', reason: 'scope_not_granted' });
    expect(result.stderr).toContain('keyway:   user_login: "jane"\n');
    expect(result.stderr).toContain('keyway:   user_email: (withheld: an e-mail address)\n');
    expect(result.stderr).not.toContain('jane.doe@acme.dev');
  });

  it('retries a dropped connection and a 503 with backoff, then succeeds', async () => {
    proxy.faults.push('drop', 503);
    const result = await keyway(['--url', proxy.url], githubEnv());
    expect(result.code).toBe(0);
    expect(proxy.tokenRequests).toBe(3);
    const retries = result.stderr.split('\n').filter((line) => line.includes('POST'));
    expect(retries).toEqual([
      expect.stringMatching(/POST http:\/\/127\.0\.0\.1:\d+\/token fetch failed \(\w+\); try 2 of 4 in 0\.\d s$/),
      expect.stringMatching(/POST http:\/\/127\.0\.0\.1:\d+\/token answered 503; try 3 of 4 in [01]\.\d s$/),
    ]);
    await verifyAccessToken(result.stdout.trim(), { issuer: proxy.url, audience: AUDIENCE });
  });

  it('gives up after the bounded number of tries: exit 5, no token', async () => {
    proxy.faults.push(502, 502, 502, 502, 502);
    const result = await keyway(['--url', proxy.url, '--retries', '2'], githubEnv());
    expect(result.code).toBe(5);
    expect(result.stdout).toBe('');
    expect(proxy.tokenRequests).toBe(3);
    expect(result.stderr).toMatch(/broker unavailable: http:\/\/127\.0\.0\.1:\d+\/token answered 502: temporarily_unavailable/);
  });

  it('on GitLab CI: reads the id_tokens variable, KEYWAY_ID_TOKEN or the one --token-env names', async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url));
    expect((await keyway(['--url', proxy.url], jobEnv({ GITLAB_CI: 'true', KEYWAY_ID_TOKEN: token }))).code).toBe(0);
    expect((await keyway(['--url', proxy.url, '--token-env', 'BROKER_ID_TOKEN'], jobEnv({ GITLAB_CI: 'true', BROKER_ID_TOKEN: token }))).code).toBe(0);
    const missing = await keyway(['--url', proxy.url], jobEnv({ GITLAB_CI: 'true' }));
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('id_tokens: { KEYWAY_ID_TOKEN: { aud:');
  });

  it('on CircleCI: reads CIRCLE_OIDC_TOKEN_V2', async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url));
    const result = await keyway(['--url', proxy.url], jobEnv({ CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: token }));
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('CI token from $CIRCLE_OIDC_TOKEN_V2');
  });

  it('on Buildkite: runs `buildkite-agent oidc request-token --audience <broker>`', async () => {
    const result = await keyway(['--url', proxy.url], jobEnv({ BUILDKITE: 'true' }));
    expect(result.code).toBe(0);
    expect(ci.requests).toEqual([{ source: 'buildkite', audience: proxy.url }]);
  });

  it('on Google Cloud: asks the metadata server for an identity token with the broker audience', async () => {
    const result = await keyway(['--url', proxy.url], jobEnv({ GCE_METADATA_HOST: ci.metadataHost }));
    expect(result.code).toBe(0);
    expect(ci.requests).toEqual([{ source: 'google', audience: proxy.url }]);
  });

  it('--subject-audience asks the CI for another audience (a policy with its own subject_audience)', async () => {
    const result = await keyway(['--url', proxy.url, '--subject-audience', 'https://keyway.internal'], githubEnv());
    expect(ci.requests).toEqual([{ source: 'github', audience: 'https://keyway.internal' }]);
    expect(result.code).toBe(4); // this broker's policies expect their own URL
  });

  it('reads the token from a file (a Kubernetes projected token) or standard input', async () => {
    const token = await issuer.sign(ciClaims(issuer.url, proxy.url));
    const job = jobEnv();
    writeFileSync(join(job.cwd, 'token'), `${token}\n`);
    expect((await keyway(['--url', proxy.url, '--subject-token-file', join(job.cwd, 'token')], job)).code).toBe(0);
    expect((await keyway(['--url', proxy.url, '--subject-token-file', '-'], jobEnv(), token)).code).toBe(0);
    const notJwt = await keyway(['--url', proxy.url, '--subject-token-file', '-'], jobEnv(), 'hello');
    expect(notJwt).toMatchObject({ code: 3, stderr: expect.stringContaining('is not a JWT') });
    expect(proxy.tokenRequests).toBe(2);
  });

  it('in a Kubernetes pod, reads the projected token at its documented path', () => {
    const source = selectCiTokenSource({}, { env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, fetch });
    expect(source.name).toBe(`Kubernetes (${KUBERNETES_TOKEN_FILE})`);
  });

  it('outside any known CI, asks for a source and exits 3', async () => {
    const result = await keyway(['--url', proxy.url], jobEnv());
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('--subject-token-file');
  });

  it('refuses bad usage with exit 2, before any exchange: no URL, plain http beyond loopback, --exec without a command, no runner file', async () => {
    expect(await keyway([], githubEnv())).toMatchObject({ code: 2, stderr: expect.stringContaining('--url is required') });
    expect(await keyway(['--url', 'http://keyway.example.com'], githubEnv())).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--url must be https'),
    });
    expect(await keyway(['--url', proxy.url, '--exec'], githubEnv())).toMatchObject({ code: 2, stderr: expect.stringContaining('--exec needs a command') });
    expect(await keyway(['--url', proxy.url, '--from', 'jenkins'], githubEnv())).toMatchObject({ code: 2 });
    expect(await keyway(['--url', proxy.url, '--github-output', 'token'], githubEnv())).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--github-output needs $GITHUB_OUTPUT'),
    });
    expect(proxy.tokenRequests).toBe(0);
  });

  it('the GitLab CI/CD component: its before_script, run by bash as a GitLab job runs it, exports the access token', async () => {
    const [header, jobs] = parseAllDocuments(readFileSync(join(REPOSITORY_ROOT, 'templates/keyway.yml'), 'utf8')).map((document) => document.toJS()) as [
      { spec: { inputs: Record<string, { default?: string }> } },
      { '.keyway': { id_tokens: { KEYWAY_ID_TOKEN: { aud: string } }; variables: Record<string, string>; before_script: string[] } },
    ];
    const version = header.spec.inputs['version']?.default;
    expect(version).toBe((JSON.parse(readFileSync(join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    const job = jobs['.keyway'];
    const runJob = async (inputs: Record<string, string>) => {
      const values: Record<string, string | undefined> = { variable: 'KEYWAY_TOKEN', version, ...inputs };
      const interpolate = (text: string) => text.replace(/\$\[\[ inputs\.(\w+) \]\]/g, (_, name: string) => values[name] ?? '');
      const idToken = await issuer.sign(ciClaims(issuer.url, interpolate(job.id_tokens.KEYWAY_ID_TOKEN.aud)));
      const script = [
        'set -eo pipefail',
        // `npx --yes keyway@VERSION` runs the published package (package.test.ts proves its bin); here, the same CLI from source.
        `npx() { [ "$1" = --yes ] && [ "$2" = "keyway@${version}" ] || exit 99; shift 2; "${process.execPath}" "${join(REPOSITORY_ROOT, 'src/cli/main.ts')}" "$@"; }`,
        ...job.before_script.map(interpolate),
        'printenv KEYWAY_TOKEN',
      ].join('\n');
      const variables = Object.fromEntries(Object.entries(job.variables).map(([name, value]) => [name, interpolate(value)]));
      return runProcess('bash', ['-c', script], jobEnv({ GITLAB_CI: 'true', KEYWAY_ID_TOKEN: idToken, ...variables }));
    };

    const granted = await runJob({ url: proxy.url, audience: AUDIENCE, scope: 'deploy:write' });
    expect(granted, granted.stderr).toMatchObject({ code: 0 });
    expect(await verifyAccessToken(granted.stdout.trim(), { issuer: proxy.url, audience: AUDIENCE, scopes: ['deploy:write'] })).toMatchObject({
      scope: 'deploy:write',
    });
    const defaults = await runJob({ url: proxy.url });
    expect(
      await verifyAccessToken(defaults.stdout.trim(), { issuer: proxy.url, audience: AUDIENCE, scopes: ['deploy:write', 'artifacts:read'] }),
    ).toBeDefined();
    // A refusal fails the job before its script runs.
    expect(await runJob({ url: proxy.url, scope: 'admin' })).toMatchObject({ code: 4, stdout: '' });
  });

  it('refuses a broker whose metadata names another issuer (exit 5)', async () => {
    const result = await keyway(['--url', broker.url], githubEnv());
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('discovered metadata issuer does not match');
    expect(ci.requests).toEqual([]);
  });
});

function* walk(directory: string): Generator<string> {
  for (const entry of readdirSync(directory)) {
    const path = join(directory, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
