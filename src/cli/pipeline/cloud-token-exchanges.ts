import { decodeJwt } from 'jose';
import { CloudRefusedError, CloudUnavailableError, withoutSecrets } from './cloud-service-errors.ts';
import { describeNetworkError, type FetchLike } from './retrying-fetch.ts';

/**
 * Google's and Entra's token endpoints, called as their documentation and their own client
 * libraries call them: a form POST answered in JSON. Plain requests: both are OAuth 2.0 calls
 * with no signing, and the vendors' SDKs (google-auth-library, @azure/identity) are large for one
 * POST each (docs/dependencies.md).
 */
export const DEFAULT_GOOGLE_STS_URL = 'https://sts.googleapis.com/v1/token';
export const DEFAULT_GOOGLE_IAM_CREDENTIALS_URL = 'https://iamcredentials.googleapis.com';
export const DEFAULT_ENTRA_URL = 'https://login.microsoftonline.com';

async function postForJson(
  service: string,
  url: string,
  init: RequestInit,
  fetch: FetchLike,
  secrets: readonly string[],
  describeError: (body: Record<string, unknown>) => string | undefined,
): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', ...init });
  } catch (error) {
    throw new CloudUnavailableError(`${service} ${new URL(url).origin}: ${describeNetworkError(error)}`, { cause: error });
  }
  const body = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
  if (response.ok && body !== undefined) return body;
  const said = body === undefined ? undefined : describeError(body);
  if (response.status >= 500 || said === undefined) throw new CloudUnavailableError(`${service} answered ${response.status}`);
  throw new CloudRefusedError(service, response.status, withoutSecrets(said, secrets));
}

const oauthError = (body: Record<string, unknown>): string | undefined =>
  typeof body['error'] === 'string' ? `${body['error']}${typeof body['error_description'] === 'string' ? `: ${body['error_description']}` : ''}` : undefined;

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The Workload Identity provider a Google cloud token is for, as Google STS's `audience` names it (`//iam.googleapis.com/…`). */
export function googleStsAudience(keywayToken: string): string {
  const aud = decodeJwt(keywayToken).aud;
  const audience = typeof aud === 'string' ? aud : undefined;
  if (audience === undefined || !audience.startsWith('https://iam.googleapis.com/')) {
    throw new CloudUnavailableError('the keyway token is not for a Google Workload Identity provider');
  }
  return audience.slice('https:'.length);
}

export interface GoogleAccess {
  readonly accessToken: string;
  readonly expiresAt: string;
  /** The service account impersonated, if any. */
  readonly serviceAccount: string | undefined;
}

/** RFC 8693 at Google STS, then (with a service account) IAM Credentials generateAccessToken. */
export async function googleAccess(request: {
  readonly keywayToken: string;
  readonly stsUrl: string;
  readonly iamCredentialsUrl: string;
  readonly serviceAccount: string | undefined;
  readonly fetch: FetchLike;
}): Promise<GoogleAccess> {
  const audience = googleStsAudience(request.keywayToken);
  const federated = await postForJson(
    'Google STS',
    request.stsUrl,
    {
      body: new URLSearchParams({
        grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
        audience,
        scope: 'https://www.googleapis.com/auth/cloud-platform',
        requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token',
        subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt',
        subjectToken: request.keywayToken,
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    request.fetch,
    [request.keywayToken],
    oauthError,
  );
  const federatedToken = text(federated['access_token']);
  if (federatedToken === undefined) throw new CloudUnavailableError('Google STS answered without an access_token');
  const expiresIn = typeof federated['expires_in'] === 'number' ? federated['expires_in'] : 3600;
  if (request.serviceAccount === undefined) {
    return { accessToken: federatedToken, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString(), serviceAccount: undefined };
  }
  const impersonated = await postForJson(
    'Google IAM Credentials',
    `${request.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(request.serviceAccount)}:generateAccessToken`,
    {
      body: JSON.stringify({ scope: ['https://www.googleapis.com/auth/cloud-platform'], lifetime: '3600s' }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${federatedToken}` },
    },
    request.fetch,
    [request.keywayToken, federatedToken],
    (body) => {
      const error = body['error'] as { status?: unknown; message?: unknown } | undefined;
      return typeof error?.message === 'string' ? `${String(error.status ?? 'error')}: ${error.message}` : undefined;
    },
  );
  const accessToken = text(impersonated['accessToken']);
  const expiresAt = text(impersonated['expireTime']);
  if (accessToken === undefined || expiresAt === undefined) throw new CloudUnavailableError('IAM Credentials answered without an accessToken');
  return { accessToken, expiresAt, serviceAccount: request.serviceAccount };
}

/** The Entra client-assertion flow (client credentials with a federated JWT): the access token it answers. */
export async function entraAccess(request: {
  readonly keywayToken: string;
  readonly authorityUrl: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly scope: string;
  readonly fetch: FetchLike;
}): Promise<{ readonly accessToken: string; readonly expiresIn: number }> {
  const answer = await postForJson(
    'Entra ID',
    `${request.authorityUrl}/${encodeURIComponent(request.tenantId)}/oauth2/v2.0/token`,
    {
      body: new URLSearchParams({
        client_id: request.clientId,
        scope: request.scope,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: request.keywayToken,
        grant_type: 'client_credentials',
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    request.fetch,
    [request.keywayToken],
    oauthError,
  );
  const accessToken = text(answer['access_token']);
  if (accessToken === undefined) throw new CloudUnavailableError('Entra ID answered without an access_token');
  return { accessToken, expiresIn: typeof answer['expires_in'] === 'number' ? answer['expires_in'] : 3600 };
}
