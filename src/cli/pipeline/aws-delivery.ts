import { homedir } from 'node:os';
import { join } from 'node:path';
import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import { assumeRoleWithWebIdentity, awsEnvironment, DEFAULT_AWS_STS_URL, writeCredentialsProfile, type AwsCredentials } from './aws-sts.ts';
import { handOverEnvironment, maskInActions } from './hand-over-environment.ts';
import { EXIT } from './job-log.ts';
import type { FetchLike } from './retrying-fetch.ts';

export const CLOUD_TOKEN_TYPE = TOKEN_TYPE.idToken;

export interface AwsDelivery {
  readonly roleArn: string;
  readonly stsUrl: URL;
  readonly region: string | undefined;
  readonly durationSeconds: number | undefined;
  /** Write this profile of the shared credentials file instead of the environment. */
  readonly profile: string | undefined;
  readonly credentialsFile: string | undefined;
  /** --exec: the command to run with the credentials in its environment only. */
  readonly command: readonly string[];
}

/** Where STS is: --aws-sts-url, else AWS_ENDPOINT_URL_STS (the AWS SDKs' own setting), else the region's endpoint, else the global one. */
export function awsStsUrl(flag: string | undefined, env: NodeJS.ProcessEnv, region: string | undefined): string {
  return flag ?? env['AWS_ENDPOINT_URL_STS'] ?? (region === undefined ? DEFAULT_AWS_STS_URL : `https://sts.${region}.amazonaws.com`);
}

/** The RoleSessionName CloudTrail shows: the keyway audit event, so the two logs join. */
export function roleSessionName(auditEventId: string | undefined): string {
  return `keyway-${(auditEventId ?? crypto.randomUUID()).replace(/[^\w+=,.@-]/g, '')}`.slice(0, 64);
}

/**
 * AWS's half of `keyway exchange --cloud aws`: the keyway token to STS, then the credentials
 * where the AWS CLI and SDKs read them: the environment of later steps (GitHub Actions, after
 * ::add-mask:: of each secret), a credentials profile, the environment of --exec's command, or
 * `export` lines on standard output for `eval`.
 */
export async function deliverAwsCredentials(
  delivery: AwsDelivery,
  webIdentityToken: string,
  auditEventId: string | undefined,
  io: { readonly env: NodeJS.ProcessEnv; readonly fetch: FetchLike; readonly log: (line: string) => void },
): Promise<number> {
  const credentials: AwsCredentials = await assumeRoleWithWebIdentity({
    stsUrl: delivery.stsUrl,
    roleArn: delivery.roleArn,
    roleSessionName: roleSessionName(auditEventId),
    webIdentityToken,
    durationSeconds: delivery.durationSeconds,
    fetch: io.fetch,
  });
  io.log(`assumed ${credentials.assumedRoleArn ?? delivery.roleArn} until ${credentials.expiration} (session ${roleSessionName(auditEventId)})`);
  // Masked before they can reach the log by any path, as configure-aws-credentials does.
  maskInActions([credentials.accessKeyId, credentials.secretAccessKey, credentials.sessionToken], io.env);
  const variables = awsEnvironment(credentials, delivery.region);
  if (delivery.profile !== undefined) {
    const file = delivery.credentialsFile ?? io.env['AWS_SHARED_CREDENTIALS_FILE'] ?? join(homedir(), '.aws', 'credentials');
    writeCredentialsProfile(file, delivery.profile, credentials);
    io.log(`credentials written to profile ${delivery.profile} of ${file}`);
    return EXIT.ok;
  }
  return handOverEnvironment(variables, delivery.command, io);
}
