import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { assumeRoleWithWebIdentity, writeCredentialsProfile } from '../../src/cli/pipeline/aws-sts.ts';
import { CloudUnavailableError } from '../../src/cli/pipeline/cloud-service-errors.ts';
import { DEFAULT_RETRY_POLICY, retryingFetch } from '../../src/cli/pipeline/retrying-fetch.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { parseAllDocuments } from 'yaml';
import { FakeAwsSts } from '../support/fake-aws-sts.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { startFakeCi } from '../support/fake-ci.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { AWS_READ_ROLE, AWS_ROLE, cloudPolicies } from '../suites/cloud-exchange-suite.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, runProcess, testConfig, writeTree, type ProcessResult } from './node-harness.ts';

const JWT = /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/;
const ACTION_ROLE = 'arn:aws:iam::123456789012:role/action';

/** From a CI token to AWS credentials the AWS CLI reads: the real broker, the real CLI, a fake STS written from AWS's documentation. */
describe('keyway exchange --cloud aws, end to end (Node broker, CLI process, fake STS on loopback)', () => {
  let github: TestIssuer;
  let broker: NodeBroker;
  let sts: FakeAwsSts;
  let skewMs = 0;
  const dir = mkdtempSync(join(tmpdir(), 'keyway-aws-'));

  beforeAll(async () => {
    github = new TestIssuer(inject('testIssuerBase'), `aws-${crypto.randomUUID().slice(0, 8)}`);
    const policies = Object.fromEntries(Object.entries(cloudPolicies(github)).map(([path, text]) => [`policies/${path}`, text]));
    // The fake CI's tokens are for the production environment: the Action and the GitLab component ask through this one.
    policies['policies/cloud/aws-production.yaml'] = (policies['policies/cloud/aws.yaml'] ?? '')
      .replace('environment: cloud-aws', 'environment: production')
      .replace(/roles: \[.*\]/, `roles: [${ACTION_ROLE}]`)
      .replace(/ {4}session_tags:[\s\S]*$/, '');
    broker = await startNodeBroker(testConfig(writeTree(policies), { issuer: OWN_URL_ISSUER }), { now: () => Date.now() + skewMs });
    sts = await FakeAwsSts.start({ issuer: broker.config.issuer, clientIds: ['sts.amazonaws.com'] }, [
      { arn: AWS_ROLE, sub: 'policy:cloud/aws', aud: 'sts.amazonaws.com', tagSession: true, maxSessionSeconds: 7200 },
      { arn: AWS_READ_ROLE, sub: 'policy:cloud/aws', aud: 'sts.amazonaws.com' },
      { arn: ACTION_ROLE, sub: 'policy:cloud/aws-production', aud: 'sts.amazonaws.com' },
    ]);
  });
  afterAll(async () => {
    await sts?.close();
    await broker?.close();
  });

  async function exchange(args: readonly string[], env: Record<string, string> = {}, claims: Record<string, unknown> = {}): Promise<ProcessResult> {
    const tokenFile = join(dir, `ci-${crypto.randomUUID()}.jwt`);
    writeFileSync(tokenFile, await github.sign(ciClaims(github.url, broker.config.issuer, { environment: 'cloud-aws', ...claims })));
    return runProcess(
      process.execPath,
      ['src/cli/main.ts', 'exchange', '--url', broker.url, '--subject-token-file', tokenFile, '--cloud', 'aws', '--aws-sts-url', sts.url, ...args],
      { env: { PATH: process.env['PATH'], HOME: dir, ...env } },
    );
  }
  const auditIdOf = (stderr: string) => /audit_event_id=(\S+)/.exec(stderr)?.[1];

  it('in GitHub Actions: masks every secret, then sets AWS_* for later steps; the session is named after the audit event', async () => {
    const envFile = join(dir, 'github-env');
    writeFileSync(envFile, '');
    const result = await exchange(['--role-arn', AWS_ROLE, '--aws-region', 'eu-west-1', '--duration-seconds', '1800'], {
      GITHUB_ACTIONS: 'true',
      GITHUB_ENV: envFile,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('');
    const written = readFileSync(envFile, 'utf8');
    const value = (name: string) => new RegExp(`^${name}<<(\\S+)\\n(.*)\\n\\1$`, 'm').exec(written)?.[2] ?? '';
    const secrets = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'].map(value);
    expect(secrets[0]).toMatch(/^ASIA/);
    expect(value('AWS_REGION')).toBe('eu-west-1');
    for (const secret of secrets) {
      const mask = result.stderr.indexOf(`::add-mask::${secret}`);
      expect(mask).toBeGreaterThanOrEqual(0);
      // Nowhere but in its own mask command.
      expect(result.stderr.split(secret)).toHaveLength(2);
    }
    // The keyway token, which STS takes again until it expires: masked before STS is called, and nowhere else.
    const keywayToken = JWT.exec(result.stderr)?.[0] ?? 'no keyway token in the log';
    expect(result.stderr.indexOf(`::add-mask::${keywayToken}\n`)).toBeGreaterThanOrEqual(0);
    expect(result.stderr.indexOf(`::add-mask::${keywayToken}\n`)).toBeLessThan(result.stderr.indexOf('keyway: assumed'));
    expect(result.stderr.split(keywayToken)).toHaveLength(2);
    const call = sts.calls.at(-1);
    expect(call).toMatchObject({ roleArn: AWS_ROLE, outcome: 'ok', sessionTags: { Repository: 'acme/api', Ref: 'refs/heads/main' } });
    expect(call?.roleSessionName).toBe(`keyway-${auditIdOf(result.stderr)}`);
  });

  it('writes a credentials profile (0600), keeping the other profiles; or export lines for eval', async () => {
    const file = join(dir, 'aws', 'credentials');
    mkdirSync(join(dir, 'aws'), { recursive: true });
    const before = '[default]\naws_access_key_id = AKIAKEEP\n\n[ci]\naws_access_key_id = OLD\n';
    writeFileSync(file, before);
    chmodSync(file, 0o644);
    // Another user's process that opened the (then world-readable) file before the exchange.
    const opened = openSync(file, 'r');
    try {
      const profile = await exchange(['--role-arn', AWS_ROLE, '--aws-profile', 'ci', '--aws-credentials-file', file]);
      expect(profile.code, profile.stderr).toBe(0);
      const text = readFileSync(file, 'utf8');
      expect(text).toMatch(
        /^\[default\]\naws_access_key_id = AKIAKEEP\n\n\[ci\]\naws_access_key_id = ASIA\w+\naws_secret_access_key = \S+\naws_session_token = \S+\n$/,
      );
      expect(statSync(file).mode & 0o777).toBe(0o600);
      // The credentials went to a new file, 0600 from the start: the old one, and a descriptor on it, never held them.
      expect(readFileSync(opened, 'utf8')).toBe(before);
      expect(readdirSync(join(dir, 'aws'))).toEqual(['credentials']);
    } finally {
      closeSync(opened);
    }

    const printed = await exchange(['--role-arn', AWS_ROLE]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^export AWS_ACCESS_KEY_ID='ASIA\w+'\nexport AWS_SECRET_ACCESS_KEY='\S+'\nexport AWS_SESSION_TOKEN='\S+'\n$/);
  });

  it('retries STS when it fails, as exchange retries the broker', async () => {
    sts.failNext = 2;
    const result = await exchange(['--role-arn', AWS_ROLE, '--retries', '3']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.match(/POST http:\/\/127\.0\.0\.1:\d+\/ answered 503; try \d of 4/g)).toHaveLength(2);
  });

  it('shows what STS answered, without any secret, when AWS refuses: a wrong audience, an expired token, a role without sts:TagSession', async () => {
    const refusedBy = async (result: ProcessResult, message: string) => {
      expect(result.code, result.stderr).toBe(4);
      expect(result.stderr).toContain(message);
      expect(result.stdout).toBe('');
      expect(result.stderr + result.stdout).not.toMatch(JWT);
    };
    const provider = sts.provider;
    sts.provider = { ...provider, clientIds: ['sts.amazonaws.com.cn'] };
    try {
      await refusedBy(await exchange(['--role-arn', AWS_ROLE]), 'AWS STS refused (HTTP 400): InvalidIdentityToken: Incorrect token audience');
    } finally {
      sts.provider = provider;
    }
    // A keyway token that expired more than AWS's five minutes of grace ago.
    skewMs = -20 * 60_000;
    try {
      const then = Math.floor(Date.now() / 1000) - 1200;
      await refusedBy(await exchange(['--role-arn', AWS_ROLE], {}, { iat: then, nbf: then - 5, exp: then + 300 }), 'ExpiredTokenException');
    } finally {
      skewMs = 0;
    }
    await refusedBy(await exchange(['--role-arn', AWS_READ_ROLE]), 'AccessDenied: Not authorized to perform sts:TagSession');
  });

  it('never reaches STS when keyway refuses: a session tag AWS would reject, or a role no policy grants', async () => {
    const before = sts.calls.length;
    const badTag = await exchange(['--role-arn', AWS_ROLE], {}, { ref: 'refs/heads/fix#1' });
    expect(badTag.code).toBe(4);
    expect(badTag.stderr).toContain('refused (HTTP 400): invalid_request');
    const notGranted = await exchange(['--role-arn', 'arn:aws:iam::123456789012:role/admin']);
    expect(notGranted.code).toBe(4);
    expect(notGranted.stderr).toContain('invalid_target');
    expect(sts.calls.length).toBe(before);
    expect((await exchange(['--role-arn', 'not-an-arn'])).code).toBe(2);
  });

  it('the GitHub Action with cloud: aws sets the masked AWS credentials for later steps and no token output', async () => {
    const ci = await startFakeCi(github);
    try {
      const step = actionStep(ci, { url: broker.url, cloud: 'aws', 'role-arn': ACTION_ROLE, 'aws-region': 'eu-west-1' }, { AWS_ENDPOINT_URL_STS: sts.url });
      const result = await step.run('main');
      expect(result, result.stdout + result.stderr).toMatchObject({ code: 0 });
      const env = readEnvironmentFile(step.files.GITHUB_ENV);
      expect(Object.keys(env)).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION']);
      for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
        const secret = env[name] ?? '';
        expect(`${result.stdout}${result.stderr}`.split(secret)).toHaveLength(2);
        expect(result.stderr).toContain(`::add-mask::${secret}`);
      }
      expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
      expect(sts.calls.at(-1)).toMatchObject({ roleArn: ACTION_ROLE, outcome: 'ok' });
    } finally {
      await ci.close();
    }
  });

  it('the GitLab component with cloud: aws exports the AWS credentials to the job, and a refusal fails it before its script', async () => {
    const [, jobs] = parseAllDocuments(readFileSync(join(REPOSITORY_ROOT, 'templates/keyway.yml'), 'utf8')).map((document) => document.toJS()) as [
      unknown,
      { '.keyway': { variables: Record<string, string>; before_script: string[] } },
    ];
    const job = jobs['.keyway'];
    const runJob = async (inputs: Record<string, string>) => {
      const values: Record<string, string> = { variable: 'KEYWAY_TOKEN', version: '0.1.0', url: broker.url, audience: '', scope: '', ...inputs };
      const interpolate = (text: string) => text.replace(/\$\[\[ inputs\.([\w-]+) \]\]/g, (_, name: string) => values[name] ?? '');
      const script = [
        'set -eo pipefail',
        `npx() { shift 2; "${process.execPath}" "${join(REPOSITORY_ROOT, 'src/cli/main.ts')}" "$@"; }`,
        ...job.before_script.map(interpolate),
        'printenv AWS_ACCESS_KEY_ID',
      ].join('\n');
      const variables = Object.fromEntries(Object.entries(job.variables).map(([name, value]) => [name, interpolate(value)]));
      const idToken = await github.sign(ciClaims(github.url, broker.config.issuer, { environment: 'production' }));
      return runProcess('bash', ['-c', script], {
        env: { PATH: process.env['PATH'], HOME: dir, GITLAB_CI: 'true', KEYWAY_ID_TOKEN: idToken, AWS_ENDPOINT_URL_STS: sts.url, ...variables },
      });
    };
    const granted = await runJob({ cloud: 'aws', 'role-arn': ACTION_ROLE });
    expect(granted, granted.stderr).toMatchObject({ code: 0 });
    expect(granted.stdout).toMatch(/^ASIA\w+\n$/);
    expect(await runJob({ cloud: 'aws', 'role-arn': AWS_READ_ROLE })).toMatchObject({ code: 4, stdout: '' });
  });
});

describe('the AWS credentials file keyway writes', () => {
  const credentials = { accessKeyId: 'ASIANEW', secretAccessKey: 'new/secret', sessionToken: 'new-session', expiration: '', assumedRoleArn: undefined };

  it('is replaced where a symlink points, the link kept, and the profiles kept', () => {
    const dotfiles = mkdtempSync(join(tmpdir(), 'keyway-dotfiles-'));
    const home = mkdtempSync(join(tmpdir(), 'keyway-home-'));
    writeFileSync(join(dotfiles, 'credentials'), '[default]\naws_access_key_id = AKIAKEEP\n', { mode: 0o644 });
    mkdirSync(join(home, '.aws'));
    symlinkSync(join(dotfiles, 'credentials'), join(home, '.aws', 'credentials'));
    writeCredentialsProfile(join(home, '.aws', 'credentials'), 'ci', credentials);
    expect(lstatSync(join(home, '.aws', 'credentials')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(home, '.aws', 'credentials'))).toBe(join(dotfiles, 'credentials'));
    expect(readFileSync(join(dotfiles, 'credentials'), 'utf8')).toBe(
      '[default]\naws_access_key_id = AKIAKEEP\n\n[ci]\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret\naws_session_token = new-session\n',
    );
    expect(statSync(join(dotfiles, 'credentials')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dotfiles)).toEqual(['credentials']);
  });

  it('takes no credential from STS with a line break: in the file it would start a profile of its own, with a command to run', async () => {
    const injected = "new-session\n[default]\ncredential_process = sh -c 'touch pwned'";
    const sts = await serveOnLoopback(
      () =>
        new Response(
          `<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIANEW</AccessKeyId>` +
            `<SecretAccessKey>new/secret</SecretAccessKey><SessionToken>${injected}</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>` +
            `</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`,
          { headers: { 'content-type': 'text/xml' } },
        ),
    );
    try {
      const assumed = assumeRoleWithWebIdentity({
        stsUrl: new URL(sts.base),
        roleArn: AWS_ROLE,
        roleSessionName: 'keyway-test',
        webIdentityToken: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln',
        fetch: retryingFetch(DEFAULT_RETRY_POLICY, () => {}),
      });
      await expect(assumed).rejects.toThrow(CloudUnavailableError);
      await expect(assumed).rejects.toThrow(/answered a SessionToken with spaces, line breaks or characters beyond ASCII: not used$/);
    } finally {
      await sts.close();
    }
  });

  it('is written where a symlink points that leads nowhere yet, the link kept', () => {
    const dotfiles = mkdtempSync(join(tmpdir(), 'keyway-dotfiles-'));
    const home = mkdtempSync(join(tmpdir(), 'keyway-home-'));
    mkdirSync(join(home, '.aws'));
    // Relative, as dotfile managers write them: resolved from the link's own directory.
    symlinkSync(relative(join(home, '.aws'), join(dotfiles, 'credentials')), join(home, '.aws', 'credentials'));
    writeCredentialsProfile(join(home, '.aws', 'credentials'), 'ci', credentials);
    expect(lstatSync(join(home, '.aws', 'credentials')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dotfiles, 'credentials'), 'utf8')).toBe(
      '[ci]\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret\naws_session_token = new-session\n',
    );
    expect(statSync(join(dotfiles, 'credentials')).mode & 0o777).toBe(0o600);
  });
});
