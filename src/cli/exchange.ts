import { parseArgs } from 'node:util';
import { isLoopbackHttpUrl } from '../core/outbound/loopback-http-url.ts';
import { selectCiTokenSource, SOURCE_NAMES, type CiTokenSource, type SourceName } from './pipeline/ci-token-sources.ts';
import { execWithEnvironment, execWithToken } from './pipeline/exec-with-token.ts';
import { calculateJwkThumbprint } from 'jose';
import { generateDpopKey, type DpopKeyPair } from '../core/dpop/dpop-fetch.ts';
import { DPOP_HELPER_ENV, DpopHelperError, startDpopSigningHelper, type DpopSigningHelper } from './pipeline/dpop-signing-helper.ts';
import { EXIT, grantLine, reportFailure, retryLine } from './pipeline/job-log.ts';
import { jobLogLine } from './pipeline/job-log-line.ts';
import { maskInActions } from './pipeline/hand-over-environment.ts';
import { exchangeForTokenMap, exchangeWithBroker, type IssuedTokenMap } from './pipeline/exchange-with-broker.ts';
import { DEFAULT_TOKEN_MAP_PREFIX, exportLines, ownerOutput, ownerVariable, ownerVariables, tokenMapGrantLines } from './pipeline/token-map-delivery.ts';
import type { FetchLike } from './pipeline/retrying-fetch.ts';
import { addMask, appendEnvironmentFile } from './pipeline/github-commands.ts';
import { DEFAULT_RETRY_POLICY, retryingFetch } from './pipeline/retrying-fetch.ts';
import { GITHUB_INSTALLATION_TOKEN_TYPE, REVOCATIONS, revokeKeywayToken } from './pipeline/revoke-token.ts';
import { TOKEN_TYPE } from '../core/exchange/token-exchange-request.ts';
import { CliError, type Command, splitAtCommand } from './command.ts';
import { CLOUD_TOKEN_TYPE } from './pipeline/aws-delivery.ts';
import { CloudOptionError, cloudDeliveryOf, deliverCloudCredentials, type CloudDelivery } from './pipeline/cloud-delivery-options.ts';

const USAGE = `usage: keyway exchange [options] [--exec -- COMMAND [ARG...]]

Swaps this CI job's own OIDC token for a keyway access token (RFC 8693). The CI token is
requested with the broker as its audience, from the CI this runs in: GitHub Actions, GitLab CI
(--token-env), CircleCI, Buildkite, Kubernetes, Google Cloud, or a file.
The job log shows the SHA-256 of each token and the audit event id, never a token.

options:
  --url URL                 the broker's URL (its KEYWAY_ISSUER); default $KEYWAY_URL
  --audience AUD            audience wanted in the access token (repeatable; default: the policy's first)
  --scope SCOPE             scopes wanted, space-separated (repeatable; default: all the policy grants)
  --from SOURCE             take the CI token from ${SOURCE_NAMES.join(', ')} (default: detected)
  --token-env NAME          take the CI token from variable NAME (GitLab: the id_tokens name; default KEYWAY_ID_TOKEN)
  --subject-token-file PATH take the CI token from PATH; - for standard input
  --subject-audience AUD    request the CI token for AUD instead of the broker's URL (a policy's subject_audience)
  --github-token            ask for a GitHub App installation token (a policy's grant.github) instead
  --repository OWNER/REPO   with --github-token: a repository wanted (repeatable; default: all the policy grants);
                            --scope then names permissions, e.g. --scope "contents:read pull_requests:write"
  --github-token-map        ask for one GitHub App installation token per owner of the --repository values (repositories
                            of several owners, e.g. --repository acme/api --repository octo-org/site), all or none;
                            printed as export lines for eval, one variable per owner: KEYWAY_GITHUB_TOKEN_<OWNER>
                            (the login upper-cased, - as _); --github-env and --exec-env then name the prefix,
                            --github-output a prefix of outputs PREFIX-<owner>
  --retries N               retries of network errors and 5xx answers, with backoff (default ${DEFAULT_RETRY_POLICY.attempts - 1}, at most 10)

cloud credentials (a policy's grant.cloud; the keyway token goes to the cloud, never to the log or standard output):
  --cloud PROVIDER          aws: AWS credentials (AssumeRoleWithWebIdentity); gcp: a Google external-account credential
                            file (STS token exchange, optional impersonation); azure: Entra workload identity variables
  --role-arn ARN            aws: the IAM role to assume (the policy must name it)
  --aws-region REGION       set AWS_REGION, and call that region's STS; default $AWS_REGION
  --aws-sts-url URL         STS endpoint; default $AWS_ENDPOINT_URL_STS, else the region's, else https://sts.amazonaws.com
  --duration-seconds N      how long the AWS credentials live, 900 to 43200 (default: the role's, 3600)
  --aws-profile NAME        write the credentials to profile NAME of the shared credentials file instead of the environment
  --aws-credentials-file F  that file; default $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials
  --service-account EMAIL   gcp: the service account to impersonate (the policy must name it); default none (direct access)
  --google-sts-url URL      gcp: default https://sts.googleapis.com/v1/token
  --google-iam-credentials-url URL  gcp: default https://iamcredentials.googleapis.com
  --client-id ID            azure: the application or managed identity client id (the policy must name it)
  --tenant-id ID            azure: the directory (tenant) id
  --azure-authority-url URL azure: default https://login.microsoftonline.com (sets AZURE_AUTHORITY_HOST when another)
  --azure-scope SCOPE       azure: the scope of the check request; default https://management.azure.com/.default
  --credentials-dir DIR     gcp, azure: where the token and credential files go; default $RUNNER_TEMP or the temp dir
  In GitHub Actions the credentials are masked and set for later steps (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_REGION; GOOGLE_APPLICATION_CREDENTIALS; AZURE_CLIENT_ID, AZURE_TENANT_ID,
  AZURE_FEDERATED_TOKEN_FILE); with --exec only the command gets them; otherwise standard output has export lines for eval.

delivery (default: print the token alone on standard output; in GitHub Actions, after ::add-mask:: on standard error):
  --github-output NAME      set step output NAME, after ::add-mask::
  --github-env NAME         set NAME for later steps of the job, after ::add-mask::
  --exec -- COMMAND ...     run COMMAND with the token in its environment only, and exit with its status;
                            the token is revoked when COMMAND ends: a keyway token at the broker (POST /revoke),
                            a GitHub token at GitHub (DELETE $GITHUB_API_URL/installation/token)
  --exec-env NAME           the variable --exec sets (default KEYWAY_TOKEN; with --github-token-map the prefix, default KEYWAY_GITHUB_TOKEN)

sender-constrained token (RFC 9449 DPoP; needs --exec, not on Windows):
  --dpop                    make a key for this job (non-extractable, in this process's memory only), and get a token
                            bound to it (token_type DPoP): a copy of the token is useless without the key. COMMAND gets
                            the token and a signing helper: \`keyway dpop proof --method M --url U\` prints a proof for
                            one request (${DPOP_HELPER_ENV.socket} and ${DPOP_HELPER_ENV.secret} name it). The helper stops and
                            the token is revoked when COMMAND ends. Without --exec no later step could sign: refused

exit codes: 0 issued (with --exec: the command's status), 2 bad usage, 3 no CI token,
4 refused by the broker (the RFC 6749 error and audit event id are printed), 5 broker unreachable or failing`;

/** The runner's files `--github-output` and `--github-env` write to. */
const RUNNER_FILES = [
  ['GITHUB_OUTPUT', 'github-output', 'step output'],
  ['GITHUB_ENV', 'github-env', 'environment variable'],
] as const;

export const exchange: Command = {
  summary: "swap this CI job's OIDC token for a keyway access token",
  usage: USAGE,
  async run(argv) {
    const { args, command } = splitAtCommand(argv);
    const { values } = parseArgs({
      args,
      options: {
        url: { type: 'string' },
        audience: { type: 'string', multiple: true, default: [] },
        scope: { type: 'string', multiple: true, default: [] },
        from: { type: 'string' },
        'token-env': { type: 'string' },
        'subject-token-file': { type: 'string' },
        'subject-audience': { type: 'string' },
        'github-token': { type: 'boolean', default: false },
        'github-token-map': { type: 'boolean', default: false },
        repository: { type: 'string', multiple: true, default: [] },
        retries: { type: 'string', default: String(DEFAULT_RETRY_POLICY.attempts - 1) },
        'github-output': { type: 'string' },
        'github-env': { type: 'string' },
        exec: { type: 'boolean', default: false },
        cloud: { type: 'string' },
        'role-arn': { type: 'string' },
        'aws-region': { type: 'string' },
        'aws-sts-url': { type: 'string' },
        'duration-seconds': { type: 'string' },
        'aws-profile': { type: 'string' },
        'aws-credentials-file': { type: 'string' },
        'service-account': { type: 'string' },
        'google-sts-url': { type: 'string' },
        'google-iam-credentials-url': { type: 'string' },
        'client-id': { type: 'string' },
        'tenant-id': { type: 'string' },
        'azure-authority-url': { type: 'string' },
        'azure-scope': { type: 'string' },
        'credentials-dir': { type: 'string' },
        'exec-env': { type: 'string' },
        dpop: { type: 'boolean', default: false },
      },
      strict: true,
    });

    const url = values.url ?? process.env['KEYWAY_URL'];
    if (!url) throw new CliError('--url is required (or set KEYWAY_URL): the broker, e.g. https://keyway.example.com');
    if (!URL.canParse(url)) throw new CliError(`--url ${url} is not a URL`);
    if (new URL(url).protocol !== 'https:' && !isLoopbackHttpUrl(new URL(url)))
      throw new CliError('--url must be https, unless the broker is on this machine (127.0.0.1, localhost, [::1])');
    const from = values.from;
    if (from !== undefined && !(SOURCE_NAMES as readonly string[]).includes(from)) throw new CliError(`--from is one of ${SOURCE_NAMES.join(', ')}`);
    const retries = Number(values.retries);
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new CliError('--retries is a whole number from 0 to 10');
    if (values.exec !== command.length > 0) throw new CliError('--exec needs a command after --, and a command after -- needs --exec');
    if (values.dpop) checkDpopUsage(values);
    if (values.exec && (values['github-output'] !== undefined || values['github-env'] !== undefined)) {
      throw new CliError('--exec keeps the token out of files: it does not combine with --github-output or --github-env');
    }
    for (const [variable, option] of RUNNER_FILES) {
      if (values[option] !== undefined && !process.env[variable]) throw new CliError(`--${option} needs $${variable}: it only works in a GitHub Actions step`);
    }
    const map = values['github-token-map'];
    if (values.repository.length > 0 && !values['github-token'] && !map) {
      throw new CliError('--repository names what a GitHub token covers: it needs --github-token or --github-token-map');
    }
    if (map && (values['github-token'] || values.audience.length > 0 || values.cloud !== undefined || values.repository.length === 0)) {
      throw new CliError('--github-token-map asks for the owners of its --repository values (at least one): not with --github-token, --audience or --cloud');
    }
    for (const repository of values.repository) {
      if (!/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/.test(repository)) throw new CliError(`--repository ${repository} is not OWNER/REPO`);
    }
    for (const name of [values['github-env'], values['exec-env']]) {
      if (name !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new CliError(`${name} is not a valid environment variable name`);
    }
    // An output's name (or a token map's prefix of them) is written into $GITHUB_OUTPUT as is: a newline would start another output.
    const output = values['github-output'];
    if (output !== undefined && !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(output)) {
      throw new CliError(`${JSON.stringify(output)} is not a valid step output name (a letter or _, then letters, digits, - or _)`);
    }

    const cloud = values.cloud === undefined ? undefined : cliCloudDelivery(values, command);
    const log = (line: string) => process.stderr.write(jobLogLine(line));
    const fetch = retryingFetch({ ...DEFAULT_RETRY_POLICY, attempts: retries + 1 }, (notice) => log(retryLine(notice)));

    const deliveries = RUNNER_FILES.filter(([, option]) => values[option] !== undefined);
    const source = (): CiTokenSource =>
      selectCiTokenSource(
        { from: from as SourceName | undefined, tokenEnv: values['token-env'], tokenFile: values['subject-token-file'] },
        { env: process.env, fetch },
      );
    const scopes = values.scope.flatMap((scope) => scope.split(' ')).filter((scope) => scope !== '');
    // A GitHub Actions runner reads workflow commands on standard error too, and masks from then on: a token is masked
    // once, before it can reach the log by any path (printed, written to a runner file or a cloud's token file, or printed
    // by a later command), and standard output stays the token alone for TOKEN=$(keyway exchange …).
    const mask = (token: string) => {
      if (process.env['GITHUB_ACTIONS'] === 'true' || deliveries.length > 0) process.stderr.write(addMask(token));
    };
    if (map) {
      const asked = {
        url: new URL(url),
        subjectAudience: values['subject-audience'],
        audiences: values.repository,
        scopes,
        fetch,
        log,
        mask,
        env: process.env,
      };
      return runTokenMap(() => exchangeForTokenMap({ ...asked, source: source() }), { values, command, deliveries, broker: asked.url, fetch, log });
    }
    let issued;
    // Made before anything is asked, so the CI token is only ever exchanged for a bound token.
    const key = values.dpop ? await generateDpopKey() : undefined;
    try {
      issued = await exchangeWithBroker({
        url: new URL(url),
        source: source(),
        subjectAudience: values['subject-audience'],
        // Repositories go as RFC 8693 audience names (OWNER/REPO), which the broker reads for any GitHub host.
        audiences: cloud === undefined ? [...values.audience, ...values.repository] : cloud.identity === undefined ? [] : [cloud.identity],
        scopes,
        requestedTokenType: cloud !== undefined ? CLOUD_TOKEN_TYPE : values['github-token'] ? GITHUB_INSTALLATION_TOKEN_TYPE : undefined,
        fetch,
        log,
        dpop: key,
        mask,
      });
      log(grantLine(issued));
      if (key !== undefined) log(`token bound to this job's DPoP key, jkt ${await calculateJwkThumbprint(key.publicJwk, 'sha256')}`);
      mask(issued.accessToken);
      if (cloud !== undefined) return await deliverCloudCredentials(cloud, issued, { env: process.env, fetch, log });
    } catch (error) {
      return reportFailure(error, log);
    }

    if (values.exec) {
      const variable = values['exec-env'] ?? 'KEYWAY_TOKEN';
      const status =
        key === undefined ? await execWithToken(command, variable, issued.accessToken, log) : await execWithSigningHelper(key, issued, command, variable, log);
      const type = issued.issuedTokenType;
      const handBack = type === undefined ? undefined : REVOCATIONS.get(type);
      const revoke =
        type === TOKEN_TYPE.accessToken
          ? () => revokeKeywayToken(issued.accessToken, { broker: new URL(url), fetch, ...(key === undefined ? {} : { dpop: key }) })
          : handBack === undefined
            ? undefined
            : () => handBack(issued.accessToken, { broker: new URL(url), env: process.env, fetch });
      if (revoke !== undefined) {
        // The command is done with it: take it back now rather than at the policy's TTL.
        await revoke().then(log, (error: unknown) => log(`could not revoke the token: ${(error as Error).message}`));
      }
      return status;
    }
    if (deliveries.length === 0) {
      process.stdout.write(`${issued.accessToken}\n`);
      return EXIT.ok;
    }
    for (const [variable, option, what] of deliveries) {
      appendEnvironmentFile(process.env[variable], variable, values[option] as string, issued.accessToken);
      log(`token set as ${what} ${values[option]}`);
    }
    return EXIT.ok;
  },
};

/**
 * `--github-token-map`: one GitHub installation token per owner, all or none. Every token is masked before anything else
 * (in GitHub Actions, or when it goes to a runner file); then the command gets them as PREFIX_OWNER and each is revoked
 * when it ends, or they go to runner files, or to standard output as export lines.
 */
async function runTokenMap(
  exchangeMap: () => Promise<IssuedTokenMap>,
  options: {
    readonly values: { readonly exec: boolean; readonly 'exec-env'?: string | undefined } & Readonly<Record<string, unknown>>;
    readonly command: readonly string[];
    readonly deliveries: readonly (typeof RUNNER_FILES)[number][];
    readonly broker: URL;
    readonly fetch: FetchLike;
    readonly log: (line: string) => void;
  },
): Promise<number> {
  const { values, command, deliveries, broker, fetch, log } = options;
  let issued: IssuedTokenMap;
  try {
    issued = await exchangeMap();
  } catch (error) {
    return reportFailure(error, log);
  }
  if (process.env['GITHUB_ACTIONS'] === 'true' || deliveries.length > 0) {
    for (const token of issued.tokens) process.stderr.write(addMask(token.accessToken));
  }
  for (const line of tokenMapGrantLines(issued)) log(line);
  if (values.exec) {
    const status = await execWithEnvironment(command, ownerVariables(values['exec-env'] ?? DEFAULT_TOKEN_MAP_PREFIX, issued), log);
    // The command is done with them: take each back now rather than at its policy's TTL.
    const revoke = REVOCATIONS.get(GITHUB_INSTALLATION_TOKEN_TYPE)!;
    for (const token of issued.tokens) {
      await revoke(token.accessToken, { broker, env: process.env, fetch }).then(
        (line) => log(`${token.owner}: ${line}`),
        (error: unknown) => log(`${token.owner}: could not revoke the token: ${(error as Error).message}`),
      );
    }
    return status;
  }
  if (deliveries.length === 0) {
    process.stdout.write(exportLines(DEFAULT_TOKEN_MAP_PREFIX, issued));
    return EXIT.ok;
  }
  for (const [variable, option, what] of deliveries) {
    const prefix = values[option] as string;
    for (const token of issued.tokens) {
      const name = option === 'github-output' ? ownerOutput(prefix, token.owner) : ownerVariable(prefix, token.owner);
      appendEnvironmentFile(process.env[variable], variable, name, token.accessToken);
      log(`${token.owner}: token set as ${what} ${name}`);
    }
  }
  return EXIT.ok;
}

/** `--dpop` gives the key to no one: the token it binds is only of use to a command run here that can ask for proofs. */
function checkDpopUsage(values: Readonly<Record<string, string | boolean | string[] | undefined>>): void {
  if (values['exec'] !== true) {
    throw new CliError('--dpop needs --exec: the key lives in this process only, so a token printed or set for later steps could never be used');
  }
  for (const other of ['github-token', 'github-token-map', 'cloud'] as const) {
    if (values[other] === true || typeof values[other] === 'string') throw new CliError(`--dpop binds a keyway token: it does not combine with --${other}`);
  }
  if (process.platform === 'win32') throw new CliError('--dpop needs a Unix domain socket in a private directory for its signing helper: not on Windows');
}

/**
 * `--dpop --exec`: the command gets the token and the signing helper's socket and secret; the helper ends with it. A helper that
 * cannot start runs no command (126, as a command that cannot be run), and the token is revoked all the same.
 */
async function execWithSigningHelper(
  key: DpopKeyPair,
  issued: { readonly accessToken: string },
  command: readonly string[],
  variable: string,
  log: (line: string) => void,
): Promise<number> {
  let helper: DpopSigningHelper;
  try {
    helper = await startDpopSigningHelper(key, issued.accessToken);
  } catch (error) {
    if (!(error instanceof DpopHelperError)) throw error;
    log(error.message);
    return 126;
  }
  // Useless once the command ends, but masked all the same should the command print its environment.
  maskInActions([helper.env[DPOP_HELPER_ENV.secret]], process.env);
  try {
    return await execWithEnvironment(command, { [variable]: issued.accessToken, ...helper.env }, log);
  } finally {
    await helper.close();
  }
}

/** `--cloud` and its options, checked: the CLI's own combinations, then what every pipeline side checks. */
function cliCloudDelivery(values: Readonly<Record<string, string | boolean | string[] | undefined>>, command: readonly string[]): CloudDelivery {
  for (const other of ['github-token', 'github-output', 'github-env'] as const) {
    if (values[other] === true || typeof values[other] === 'string') throw new CliError(`--cloud does not combine with --${other}`);
  }
  if ((values['audience'] as string[]).length > 0 || (values['scope'] as string[]).length > 0 || (values['repository'] as string[]).length > 0) {
    throw new CliError('--cloud asks for the identity its own options name: it does not combine with --audience, --scope or --repository');
  }
  try {
    return cloudDeliveryOf((name) => (typeof values[name] === 'string' ? (values[name] as string) : undefined), command, process.env);
  } catch (error) {
    if (error instanceof CloudOptionError) throw new CliError(error.message);
    throw error;
  }
}
