import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { FakeEntra } from '../support/fake-entra.ts';
import { FakeGoogleSts } from '../support/fake-google-sts.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { AZURE_CLIENT, AZURE_TENANT, cloudPolicies, GCP_PROVIDER, GCP_SERVICE_ACCOUNT } from '../suites/cloud-exchange-suite.ts';
import { OWN_URL_ISSUER, REPOSITORY_ROOT, runProcess, testConfig, writeTree, type Environment, type ProcessResult } from './node-harness.ts';

const JWT = /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/;

/** From a CI token to Google and Azure credentials their tools read: the real broker, the real CLI, fakes written from each cloud's documentation. */
describe('keyway exchange --cloud gcp | azure, end to end (Node broker, CLI process, fake Google STS and Entra ID)', () => {
  let github: TestIssuer;
  let broker: NodeBroker;
  let google: FakeGoogleSts;
  let entra: FakeEntra;
  let skewMs = 0;
  const dir = mkdtempSync(join(tmpdir(), 'keyway-clouds-'));

  beforeAll(async () => {
    github = new TestIssuer(inject('testIssuerBase'), `clouds-${crypto.randomUUID().slice(0, 8)}`);
    const policies = Object.fromEntries(Object.entries(cloudPolicies(github)).map(([path, text]) => [`policies/${path}`, text]));
    broker = await startNodeBroker(testConfig(writeTree(policies), { issuer: OWN_URL_ISSUER }), { now: () => Date.now() + skewMs });
    google = await FakeGoogleSts.start({
      issuer: broker.config.issuer,
      provider: GCP_PROVIDER,
      admitted: ['gcp:acme/api'],
      serviceAccounts: { [GCP_SERVICE_ACCOUNT]: ['gcp:acme/api'] },
    });
    entra = await FakeEntra.start({
      tenantId: AZURE_TENANT,
      applications: { [AZURE_CLIENT]: [{ issuer: broker.config.issuer, subject: 'policy:cloud/azure', audience: 'api://AzureADTokenExchange' }] },
    });
  });
  afterAll(async () => {
    await google?.close();
    await entra?.close();
    await broker?.close();
  });

  /** `node src/cli/main.ts exchange …` with a CI token for `environment` from a file, as a process's file and arguments. */
  async function exchangeCommand(environment: string, args: readonly string[], claims: Record<string, unknown> = {}): Promise<string[]> {
    const tokenFile = join(dir, `ci-${crypto.randomUUID()}.jwt`);
    writeFileSync(tokenFile, await github.sign(ciClaims(github.url, broker.config.issuer, { environment, ...claims })));
    return [process.execPath, 'src/cli/main.ts', 'exchange', '--url', broker.url, '--subject-token-file', tokenFile, ...args];
  }
  async function exchange(
    environment: string,
    args: readonly string[],
    env: Record<string, string> = {},
    claims: Record<string, unknown> = {},
    launcher: readonly string[] = [],
  ): Promise<ProcessResult> {
    const [file, ...rest] = [...launcher, ...(await exchangeCommand(environment, args, claims))];
    return runProcess(file ?? '', rest, { env: { PATH: process.env['PATH'], HOME: dir, ...env } });
  }
  const gcpArgs = (...more: string[]) => [
    ...['--cloud', 'gcp', '--google-sts-url', `${google.url}/v1/token`, '--google-iam-credentials-url', google.url],
    ...['--credentials-dir', dir, ...more],
  ];
  const azureArgs = (...more: string[]) => [
    '--cloud',
    'azure',
    '--client-id',
    AZURE_CLIENT,
    '--tenant-id',
    AZURE_TENANT,
    '--azure-authority-url',
    entra.url,
    '--credentials-dir',
    dir,
    ...more,
  ];
  /** Cloud arguments with another --credentials-dir. */
  const inDirectory = (args: readonly string[], parent: string) => args.map((arg, index) => (args[index - 1] === '--credentials-dir' ? parent : arg));
  const githubEnv = () => {
    const file = join(dir, `github-env-${crypto.randomUUID()}`);
    writeFileSync(file, '');
    return { file, env: { GITHUB_ACTIONS: 'true', GITHUB_ENV: file } };
  };
  const envValue = (file: string, name: string) => new RegExp(`^${name}<<(\\S+)\\n(.*)\\n\\1$`, 'm').exec(readFileSync(file, 'utf8'))?.[2] ?? '';
  const refusedBy = (result: ProcessResult, message: string) => {
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(message);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toMatch(JWT);
  };

  it('Google: impersonates the service account, writes an external-account credential file that Google STS accepts as its libraries use it', async () => {
    const { file, env } = githubEnv();
    const result = await exchange('cloud-gcp', gcpArgs('--service-account', GCP_SERVICE_ACCOUNT), env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/::add-mask::ya29\.sa-/);
    // The keyway token that the credential file points at is masked for later steps, and appears nowhere but in that command.
    expect(result.stderr).toMatch(new RegExp(`^::add-mask::${JWT.source}$`, 'm'));
    expect(result.stderr.replace(/^::add-mask::.*\n/gm, '')).not.toMatch(JWT);
    const path = envValue(file, 'GOOGLE_APPLICATION_CREDENTIALS');
    expect(envValue(file, 'CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE')).toBe(path);
    const credential = JSON.parse(readFileSync(path, 'utf8')) as {
      type: string;
      audience: string;
      subject_token_type: string;
      token_url: string;
      credential_source: { file: string };
      service_account_impersonation_url: string;
    };
    expect(credential).toMatchObject({
      type: 'external_account',
      audience: `//iam.googleapis.com/${GCP_PROVIDER}`,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${google.url}/v1/token`,
      service_account_impersonation_url: `${google.url}/v1/projects/-/serviceAccounts/${encodeURIComponent(GCP_SERVICE_ACCOUNT)}:generateAccessToken`,
    });
    for (const written of [path, credential.credential_source.file]) expect(statSync(written).mode & 0o777).toBe(0o600);
    // What google-auth-library does with the file: the token from credential_source, exchanged at token_url, then impersonation.
    const federated = await fetch(credential.token_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
        audience: credential.audience,
        scope: 'https://www.googleapis.com/auth/cloud-platform',
        requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token',
        subjectTokenType: credential.subject_token_type,
        subjectToken: readFileSync(credential.credential_source.file, 'utf8'),
      }),
    });
    expect(federated.status).toBe(200);
    const { access_token } = (await federated.json()) as { access_token: string };
    const impersonated = await fetch(credential.service_account_impersonation_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` },
      body: JSON.stringify({ scope: ['https://www.googleapis.com/auth/cloud-platform'], lifetime: '3600s' }),
    });
    expect(impersonated.status).toBe(200);
  });

  it('Google: shows what Google answered, without a token, for a subject the attribute condition rejects, a provider that is not there, an ungranted service account, an expired token', async () => {
    google.config.admitted = [];
    try {
      refusedBy(
        await exchange('cloud-gcp', gcpArgs()),
        'Google STS refused (HTTP 400): unauthorized_client: The given credential is rejected by the attribute condition.',
      );
    } finally {
      google.config.admitted = ['gcp:acme/api'];
    }
    google.config.provider = GCP_PROVIDER.replace('/providers/keyway', '/providers/other');
    try {
      refusedBy(await exchange('cloud-gcp', gcpArgs()), 'Google STS refused (HTTP 400): invalid_target');
    } finally {
      google.config.provider = GCP_PROVIDER;
    }
    (google.config.serviceAccounts as Record<string, string[]>)[GCP_SERVICE_ACCOUNT] = [];
    try {
      refusedBy(await exchange('cloud-gcp', gcpArgs('--service-account', GCP_SERVICE_ACCOUNT)), 'Google IAM Credentials refused (HTTP 403): PERMISSION_DENIED');
    } finally {
      (google.config.serviceAccounts as Record<string, string[]>)[GCP_SERVICE_ACCOUNT] = ['gcp:acme/api'];
    }
    skewMs = -20 * 60_000;
    try {
      const then = Math.floor(Date.now() / 1000) - 1200;
      refusedBy(await exchange('cloud-gcp', gcpArgs(), {}, { iat: then, nbf: then - 5, exp: then + 300 }), 'invalid_grant: ID Token expired.');
    } finally {
      skewMs = 0;
    }
  });

  it('Azure: Entra accepts the RS256 assertion; AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set for later steps', async () => {
    const { file, env } = githubEnv();
    const result = await exchange('cloud-azure', azureArgs(), env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/::add-mask::entra-access-/);
    expect(envValue(file, 'AZURE_CLIENT_ID')).toBe(AZURE_CLIENT);
    expect(envValue(file, 'AZURE_TENANT_ID')).toBe(AZURE_TENANT);
    expect(envValue(file, 'AZURE_AUTHORITY_HOST')).toBe(entra.url);
    const tokenFile = envValue(file, 'AZURE_FEDERATED_TOKEN_FILE');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    // The keyway token stays good at Entra until it expires: a later step printing the file (az login --debug) shows *** in the log.
    expect(result.stderr).toContain(`::add-mask::${readFileSync(tokenFile, 'utf8')}`);
    // What azure-identity's WorkloadIdentityCredential does with the file.
    const answer = await fetch(`${entra.url}/${AZURE_TENANT}/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({
        client_id: AZURE_CLIENT,
        scope: 'https://management.azure.com/.default',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: readFileSync(tokenFile, 'utf8'),
        grant_type: 'client_credentials',
      }),
    });
    expect(answer.status).toBe(200);
  });

  it('Azure: shows what Entra answered, without a token, for a credential whose subject does not match, and for an expired assertion', async () => {
    const credentials = entra.config.applications[AZURE_CLIENT]!;
    const kept = [...credentials];
    credentials.splice(0, credentials.length, { ...kept[0]!, subject: 'policy:other' });
    try {
      refusedBy(await exchange('cloud-azure', azureArgs()), 'Entra ID refused (HTTP 400): invalid_client: AADSTS700213');
    } finally {
      credentials.splice(0, credentials.length, ...kept);
    }
    skewMs = -20 * 60_000;
    try {
      const then = Math.floor(Date.now() / 1000) - 1200;
      refusedBy(await exchange('cloud-azure', azureArgs(), {}, { iat: then, nbf: then - 5, exp: then + 300 }), 'AADSTS700024');
    } finally {
      skewMs = 0;
    }
    expect((await exchange('cloud-azure', ['--cloud', 'azure', '--client-id', AZURE_CLIENT])).code).toBe(2);
    expect((await exchange('cloud-azure', [...azureArgs(), '--role-arn', 'arn:aws:iam::123456789012:role/x'])).code).toBe(2);
  });

  it('--exec: the command reads the written files, which are gone once it ends (the keyway token in them is good at the cloud until it expires)', async () => {
    for (const [environment, args, variable] of [
      ['cloud-gcp', gcpArgs('--service-account', GCP_SERVICE_ACCOUNT), 'GOOGLE_APPLICATION_CREDENTIALS'],
      ['cloud-azure', azureArgs(), 'AZURE_FEDERATED_TOKEN_FILE'],
    ] as const) {
      const script = `test -s "$${variable}" && test -s "$(dirname "$${variable}")/keyway-token.jwt" && printf %s "$${variable}"`;
      const result = await exchange(environment, [...args, '--exec', '--', 'sh', '-c', script]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^\//);
      expect(existsSync(dirname(result.stdout)), `${environment}: ${dirname(result.stdout)} is left behind`).toBe(false);
    }
  });

  it('--exec: the files are gone when the credential file cannot be written after the token file, the command never run', async () => {
    // Written under a path so long that the credential file, which names the token file, outgrows a file size limit the token file fits in.
    const parent = join(mkdtempSync(join(dir, 'long-')), ...Array.from({ length: 12 }, (_, index) => `${index}`.padEnd(200, 'd')));
    mkdirSync(parent, { recursive: true });
    const args = [...inDirectory(gcpArgs('--service-account', GCP_SERVICE_ACCOUNT), parent), '--exec', '--', 'sh', '-c', 'exit 7'];
    const result = await exchange('cloud-gcp', args, {}, {}, ['prlimit', '--fsize=2048']);
    expect(result.stderr).toMatch(/EFBIG/);
    expect(result.code).toBe(1);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('without --exec: the files are removed when the variables naming them cannot be set for later steps', async () => {
    for (const [environment, args] of [
      ['cloud-gcp', gcpArgs('--service-account', GCP_SERVICE_ACCOUNT)],
      ['cloud-azure', azureArgs()],
    ] as const) {
      const parent = mkdtempSync(join(dir, 'unset-'));
      // A directory where the runner's environment file should be: appending to it fails.
      const result = await exchange(environment, inDirectory(args, parent), { GITHUB_ACTIONS: 'true', GITHUB_ENV: parent });
      expect(result.stderr).toMatch(/EISDIR/);
      expect(result.code).not.toBe(0);
      expect(readdirSync(parent), environment).toEqual([]);
    }
  });

  it('--exec: SIGHUP to keyway is passed on to the command, and the files are gone once it ends', async () => {
    for (const [environment, args, variable] of [
      ['cloud-gcp', gcpArgs('--service-account', GCP_SERVICE_ACCOUNT), 'GOOGLE_APPLICATION_CREDENTIALS'],
      ['cloud-azure', azureArgs(), 'AZURE_FEDERATED_TOKEN_FILE'],
    ] as const) {
      const [file, ...rest] = await exchangeCommand(environment, [...args, '--exec', '--', 'sh', '-c', `printf '%s\\n' "$${variable}"; exec sleep 30`]);
      const jobEnv: Environment = { PATH: process.env['PATH'], HOME: dir };
      const child = spawn(file ?? '', rest, {
        cwd: REPOSITORY_ROOT,
        env: jobEnv as NodeJS.ProcessEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
      const written = await new Promise<string>((resolve) => {
        let stdout = '';
        child.stdout.on('data', (chunk) => {
          stdout += chunk;
          if (stdout.endsWith('\n')) resolve(stdout.trim());
        });
      });
      expect(existsSync(written), stderr).toBe(true);
      child.kill('SIGHUP');
      expect(await exited, stderr).toBe(129);
      expect(existsSync(dirname(written)), `${environment}: ${dirname(written)} is left behind`).toBe(false);
    }
  });
});
