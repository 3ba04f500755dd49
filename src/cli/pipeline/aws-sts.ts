import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CloudRefusedError, CloudUnavailableError, withoutSecrets } from './cloud-service-errors.ts';
import { describeNetworkError, type FetchLike } from './retrying-fetch.ts';

/**
 * AssumeRoleWithWebIdentity, as AWS documents it
 * (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html):
 * an unsigned Query API call, form-encoded, answered in XML. A plain request rather than the AWS
 * SDK: the call needs no signature, and @aws-sdk/client-sts would add some forty packages to
 * the pipeline side for one POST (docs/dependencies.md).
 */
export const DEFAULT_AWS_STS_URL = 'https://sts.amazonaws.com';

export interface AssumeRoleRequest {
  readonly stsUrl: URL;
  readonly roleArn: string;
  /** 2 to 64 of `[\w+=,.@-]`: CloudTrail shows it, so keyway names it after the audit event. */
  readonly roleSessionName: string;
  readonly webIdentityToken: string;
  readonly durationSeconds?: number | undefined;
  readonly fetch: FetchLike;
}

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: string;
  readonly assumedRoleArn: string | undefined;
}

/** How the job log names the service. */
const STS = 'AWS STS';

const ENTITIES: Readonly<Record<string, string>> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'", '&amp;': '&' };

/** The text of the first `<name>` element: the documented answer is flat, one element of each name. */
function element(xml: string, name: string): string | undefined {
  const found = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  return found?.replace(/&(?:lt|gt|quot|apos|amp);/g, (entity) => ENTITIES[entity] ?? entity);
}

/** What a credential of AWS's holds: printable ASCII, no space. */
const CREDENTIAL_TEXT = /^[!-~]+$/;

export async function assumeRoleWithWebIdentity(request: AssumeRoleRequest): Promise<AwsCredentials> {
  const body = new URLSearchParams({
    Action: 'AssumeRoleWithWebIdentity',
    Version: '2011-06-15',
    RoleArn: request.roleArn,
    RoleSessionName: request.roleSessionName,
    WebIdentityToken: request.webIdentityToken,
    ...(request.durationSeconds === undefined ? {} : { DurationSeconds: String(request.durationSeconds) }),
  });
  let response: Response;
  try {
    response = await request.fetch(request.stsUrl.href, {
      method: 'POST',
      body: body.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: 'text/xml' },
    });
  } catch (error) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin}: ${describeNetworkError(error)}`, { cause: error });
  }
  const xml = await response.text();
  if (!response.ok) {
    const code = element(xml, 'Code');
    if (code === undefined || response.status >= 500) {
      throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered ${response.status}${code === undefined ? '' : ` ${code}`}`);
    }
    throw new CloudRefusedError(STS, response.status, withoutSecrets(`${code}: ${element(xml, 'Message') ?? ''}`, [request.webIdentityToken]));
  }
  const credentials = {
    accessKeyId: element(xml, 'AccessKeyId'),
    secretAccessKey: element(xml, 'SecretAccessKey'),
    sessionToken: element(xml, 'SessionToken'),
    expiration: element(xml, 'Expiration'),
  };
  if (Object.values(credentials).some((value) => value === undefined || value === '')) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered 200 without the credentials AssumeRoleWithWebIdentityResult documents`);
  }
  // AWS's key ids, secrets and session tokens are base64-like: a line break in one would start a line of the credentials
  // file of its own (another profile, a credential_process to run). The value is not named: it is a secret.
  const { accessKeyId, secretAccessKey, sessionToken } = credentials;
  const unfit = Object.entries({ AccessKeyId: accessKeyId, SecretAccessKey: secretAccessKey, SessionToken: sessionToken }).find(
    ([, value]) => !CREDENTIAL_TEXT.test(value ?? ''),
  );
  if (unfit !== undefined) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered a ${unfit[0]} with spaces, line breaks or characters beyond ASCII: not used`);
  }
  return { ...(credentials as Omit<AwsCredentials, 'assumedRoleArn'>), assumedRoleArn: element(xml, 'Arn') };
}

/** The environment the AWS CLI and SDKs read credentials from (AWS_REGION only when given). */
export function awsEnvironment(credentials: AwsCredentials, region: string | undefined): [string, string][] {
  return [
    ['AWS_ACCESS_KEY_ID', credentials.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', credentials.secretAccessKey],
    ['AWS_SESSION_TOKEN', credentials.sessionToken],
    ...(region === undefined ? [] : ([['AWS_REGION', region]] as [string, string][])),
  ];
}

/** Where `path` leads: itself, or where its symlink points, even a link to a file not written yet (the first write makes it). */
function linkTarget(path: string): string {
  if (existsSync(path)) return realpathSync(path);
  try {
    return lstatSync(path).isSymbolicLink() ? resolve(dirname(path), readlinkSync(path)) : path;
  } catch {
    return path;
  }
}

/**
 * Writes `[profile]` of a shared credentials file (INI, as the AWS CLI and SDKs read
 * ~/.aws/credentials), replacing that section and keeping every other one; the file is 0600.
 *
 * The new content goes to a new file, 0600 from its creation, renamed over the old one: never into
 * the old file, which may be readable by others (0644) or held open by another process, whose
 * descriptor keeps reading the old content whatever its mode becomes. A symlinked credentials file
 * (dotfiles kept elsewhere) is replaced where the link points, so the link still leads to it.
 */
export function writeCredentialsProfile(path: string, profile: string, credentials: AwsCredentials): void {
  const target = linkTarget(path);
  const kept: string[] = [];
  let inProfile = false;
  for (const line of existsSync(path) ? readFileSync(path, 'utf8').split('\n') : []) {
    const section = /^\s*\[([^\]]+)\]\s*$/.exec(line)?.[1];
    if (section !== undefined) inProfile = section.trim() === profile;
    if (!inProfile) kept.push(line);
  }
  while (kept.length > 0 && kept.at(-1)?.trim() === '') kept.pop();
  const section = [
    `[${profile}]`,
    `aws_access_key_id = ${credentials.accessKeyId}`,
    `aws_secret_access_key = ${credentials.secretAccessKey}`,
    `aws_session_token = ${credentials.sessionToken}`,
  ];
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  // In the target's own directory, so that the rename stays on one file system and replaces it in one step.
  const temporary = join(dirname(target), `.${basename(target)}.keyway-${randomBytes(8).toString('hex')}`);
  try {
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600); // whatever the umask left
      writeFileSync(fd, `${[...kept, ...(kept.length > 0 ? [''] : []), ...section].join('\n')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
