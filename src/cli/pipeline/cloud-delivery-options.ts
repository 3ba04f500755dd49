import { isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { KeywayError } from '../../core/errors/keyway-error.ts';
import { awsStsUrl, deliverAwsCredentials, type AwsDelivery } from './aws-delivery.ts';
import { DEFAULT_ENTRA_URL, DEFAULT_GOOGLE_IAM_CREDENTIALS_URL, DEFAULT_GOOGLE_STS_URL } from './cloud-token-exchanges.ts';
import { deliverAzureCredentials, deliverGoogleCredentials, type AzureDelivery, type GoogleDelivery } from './google-azure-delivery.ts';
import type { IssuedToken } from './exchange-with-broker.ts';
import type { FetchLike } from './retrying-fetch.ts';

/** A cloud option that is missing, malformed or foreign to the cloud asked for: bad usage. */
export class CloudOptionError extends KeywayError {
  override readonly name = 'CloudOptionError';
  readonly code = 'cloud_option';
}

export type CloudDelivery =
  | { readonly provider: 'aws'; readonly identity: string; readonly delivery: AwsDelivery }
  | { readonly provider: 'gcp'; readonly identity: string | undefined; readonly delivery: GoogleDelivery }
  | { readonly provider: 'azure'; readonly identity: string; readonly delivery: AzureDelivery };

const OPTIONS_OF: Readonly<Record<string, readonly string[]>> = {
  aws: ['role-arn', 'aws-region', 'aws-sts-url', 'duration-seconds', 'aws-profile', 'aws-credentials-file'],
  gcp: ['service-account', 'google-sts-url', 'google-iam-credentials-url', 'credentials-dir'],
  azure: ['client-id', 'tenant-id', 'azure-authority-url', 'azure-scope', 'credentials-dir'],
};

/** A cloud endpoint: https, or http on this machine (tests, a local emulator). */
function endpoint(url: string, what: string): string {
  if (!URL.canParse(url)) throw new CloudOptionError(`${what} ${url} is not a URL`);
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && !isLoopbackHttpUrl(parsed)) throw new CloudOptionError(`${what} must be https, unless it is on this machine`);
  return url.replace(/\/$/, '');
}

/** `--cloud` (or the Action's `cloud` input) and its options, checked: what the keyway token is exchanged for, and where the credentials go. */
export function cloudDeliveryOf(option: (name: string) => string | undefined, command: readonly string[], env: NodeJS.ProcessEnv): CloudDelivery {
  const provider = option('cloud') ?? '';
  if (!Object.hasOwn(OPTIONS_OF, provider)) throw new CloudOptionError(`--cloud ${provider} is not a cloud keyway exchange supports: aws, gcp, azure`);
  const foreign = Object.entries(OPTIONS_OF)
    .filter(([name]) => name !== provider)
    .flatMap(([, names]) => names)
    .filter((name) => !OPTIONS_OF[provider]?.includes(name) && option(name) !== undefined);
  if (foreign.length > 0) throw new CloudOptionError(`--cloud ${provider} does not take --${foreign.join(', --')}`);
  if (provider === 'gcp') {
    const serviceAccount = option('service-account');
    if (serviceAccount !== undefined && !/^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.-]{0,200}\.gserviceaccount\.com$/.test(serviceAccount)) {
      throw new CloudOptionError(`--service-account ${serviceAccount} is not a service account email`);
    }
    return {
      provider,
      identity: serviceAccount,
      delivery: {
        serviceAccount,
        stsUrl: endpoint(option('google-sts-url') ?? DEFAULT_GOOGLE_STS_URL, '--google-sts-url'),
        iamCredentialsUrl: endpoint(option('google-iam-credentials-url') ?? DEFAULT_GOOGLE_IAM_CREDENTIALS_URL, '--google-iam-credentials-url'),
        directory: option('credentials-dir'),
        command,
      },
    };
  }
  if (provider === 'azure') {
    const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
    const clientId = option('client-id');
    const tenantId = option('tenant-id');
    if (clientId === undefined || !uuid.test(clientId) || tenantId === undefined || !uuid.test(tenantId)) {
      throw new CloudOptionError('--cloud azure needs --client-id and --tenant-id, each a GUID');
    }
    return {
      provider,
      identity: clientId,
      delivery: {
        clientId,
        tenantId,
        authorityUrl: endpoint(option('azure-authority-url') ?? DEFAULT_ENTRA_URL, '--azure-authority-url'),
        scope: option('azure-scope') ?? 'https://management.azure.com/.default',
        directory: option('credentials-dir'),
        command,
      },
    };
  }
  const roleArn = option('role-arn');
  if (roleArn === undefined || !/^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/.test(roleArn)) {
    throw new CloudOptionError('--cloud aws needs --role-arn arn:aws:iam::ACCOUNT:role/NAME');
  }
  const region = option('aws-region') ?? env['AWS_REGION'];
  if (region !== undefined && !/^[a-z]{2}(?:-[a-z]+)+-\d$/.test(region)) throw new CloudOptionError(`--aws-region ${region} is not an AWS region`);
  const stsUrl = new URL(endpoint(awsStsUrl(option('aws-sts-url'), env, region), 'the STS URL'));
  const duration = option('duration-seconds');
  const durationSeconds = duration === undefined ? undefined : Number(duration);
  if (durationSeconds !== undefined && (!Number.isInteger(durationSeconds) || durationSeconds < 900 || durationSeconds > 43_200)) {
    throw new CloudOptionError('--duration-seconds is a whole number from 900 to 43200');
  }
  const profile = option('aws-profile');
  if (profile !== undefined && !/^[\w.+=,@-]{1,64}$/.test(profile)) throw new CloudOptionError(`--aws-profile ${profile} is not a profile name`);
  if (profile !== undefined && command.length > 0) throw new CloudOptionError('--aws-profile writes a file; --exec keeps the credentials out of files');
  if (option('aws-credentials-file') !== undefined && profile === undefined) throw new CloudOptionError('--aws-credentials-file needs --aws-profile');
  return {
    provider: 'aws',
    identity: roleArn,
    delivery: { roleArn, stsUrl, region, durationSeconds, profile, credentialsFile: option('aws-credentials-file'), command },
  };
}

/** The cloud's half of the exchange: the keyway token to the cloud, the credentials where its tools read them. */
export function deliverCloudCredentials(
  cloud: CloudDelivery,
  issued: IssuedToken,
  io: { readonly env: NodeJS.ProcessEnv; readonly fetch: FetchLike; readonly log: (line: string) => void },
): Promise<number> {
  if (cloud.provider === 'aws') return deliverAwsCredentials(cloud.delivery, issued.accessToken, issued.auditEventId, io);
  if (cloud.provider === 'gcp') return deliverGoogleCredentials(cloud.delivery, issued.accessToken, io);
  return deliverAzureCredentials(cloud.delivery, issued.accessToken, io);
}
