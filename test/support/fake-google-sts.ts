import { Hono } from 'hono';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { fetchIssuerKeys } from './issuer-keys.ts';
import { serveOnLoopback } from './serve-on-loopback.ts';

/**
 * Google STS (`POST /v1/token`, RFC 8693) and IAM Credentials (`generateAccessToken`) on
 * loopback, written from Google's documentation (Workload Identity Federation with other
 * providers; the providers API; google-auth-library's sts.py). Like Google it fetches the
 * issuer's discovery and JWKS, verifies RS256 or ES256 only, holds `aud` to the provider
 * (`https://iam.googleapis.com/` or `//iam.googleapis.com/` + its name), `exp` in the future,
 * `iat` in the past, `exp − iat` ≤ 24 h, `google.subject` (= `sub`) ≤ 127 bytes and the
 * provider's attribute condition (here: a list of admitted subjects), and lets a federated
 * principal impersonate only a service account that grants it roles/iam.workloadIdentityUser.
 * What it cannot check: TLS (Google refuses self-signed certificates), CEL itself, Google's key cache.
 */
export interface FakeGoogleConfig {
  readonly issuer: string;
  /** projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER */
  provider: string;
  /** The attribute condition: the subjects admitted. */
  admitted: readonly string[];
  /** Service account → the subjects holding roles/iam.workloadIdentityUser on it. */
  readonly serviceAccounts: Readonly<Record<string, readonly string[]>>;
}

const error = (status: number, code: string, description: string) => ({ status, body: { error: code, error_description: description } });

export class FakeGoogleSts {
  readonly config: FakeGoogleConfig;
  readonly #federated = new Map<string, string>();
  url = '';
  #close: () => Promise<void> = async () => {};

  private constructor(config: FakeGoogleConfig) {
    this.config = config;
  }

  static async start(config: FakeGoogleConfig): Promise<FakeGoogleSts> {
    const google = new FakeGoogleSts(config);
    const app = new Hono();
    app.post('/v1/token', async (c) => {
      const text = await c.req.text();
      const form = (c.req.header('content-type') ?? '').includes('json')
        ? new URLSearchParams(JSON.parse(text) as Record<string, string>)
        : new URLSearchParams(text);
      const outcome = await google.#exchange(form);
      return c.json(outcome.body, outcome.status as 200);
    });
    app.post('/v1/projects/-/serviceAccounts/*', async (c) => {
      const email = decodeURIComponent(c.req.path.slice('/v1/projects/-/serviceAccounts/'.length).replace(/:generateAccessToken$/, ''));
      const subject = google.#federated.get((c.req.header('authorization') ?? '').replace(/^Bearer /, ''));
      const { lifetime } = (await c.req.json()) as { lifetime?: string };
      if (subject === undefined)
        return c.json({ error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } }, 401);
      if (!(google.config.serviceAccounts[email] ?? []).includes(subject)) {
        return c.json(
          {
            error: {
              code: 403,
              message: "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
              status: 'PERMISSION_DENIED',
            },
          },
          403,
        );
      }
      if (lifetime !== undefined && Number.parseInt(lifetime, 10) > 3600) {
        return c.json({ error: { code: 400, message: 'The lifetime exceeds the maximum of 3600s.', status: 'INVALID_ARGUMENT' } }, 400);
      }
      return c.json({ accessToken: `ya29.sa-${crypto.randomUUID()}`, expireTime: new Date(Date.now() + 3600_000).toISOString() });
    });
    const served = await serveOnLoopback(app.fetch);
    google.url = served.base;
    google.#close = served.close;
    return google;
  }

  close(): Promise<void> {
    return this.#close();
  }

  async #exchange(form: URLSearchParams): Promise<{ status: number; body: object }> {
    const provider = this.config.provider;
    if (form.get('grantType') !== 'urn:ietf:params:oauth:grant-type:token-exchange')
      return error(400, 'unsupported_grant_type', 'Invalid value for "grant_type".');
    if (form.get('audience') !== `//iam.googleapis.com/${provider}`) {
      return error(
        400,
        'invalid_target',
        'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.',
      );
    }
    const type = form.get('subjectTokenType');
    if (type !== 'urn:ietf:params:oauth:token-type:jwt' && type !== 'urn:ietf:params:oauth:token-type:id_token')
      return error(400, 'invalid_request', 'Invalid value for "subject_token_type".');
    const token = form.get('subjectToken') ?? '';
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return error(400, 'invalid_grant', 'Unable to parse the ID Token.');
    }
    if (iss !== this.config.issuer)
      return error(400, 'invalid_grant', `The issuer in ID Token ${String(iss)} does not match the expected ones: ${this.config.issuer}.`);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, createLocalJWKSet(await fetchIssuerKeys(this.config.issuer)), { algorithms: ['RS256', 'ES256'] }));
    } catch (failure) {
      const expired = failure instanceof Error && 'code' in failure && failure.code === 'ERR_JWT_EXPIRED';
      return error(400, 'invalid_grant', expired ? 'ID Token expired.' : 'Invalid ID Token: the signature could not be verified.');
    }
    const aud = typeof payload['aud'] === 'string' ? [payload['aud']] : Array.isArray(payload['aud']) ? payload['aud'].map(String) : [];
    if (!aud.some((value) => value === `https://iam.googleapis.com/${provider}` || value === `//iam.googleapis.com/${provider}`)) {
      return error(400, 'invalid_grant', `The audience in ID Token [${aud.join(', ')}] does not match the expected audience.`);
    }
    const now = Math.floor(Date.now() / 1000);
    const { iat, exp } = payload as { iat?: number; exp?: number };
    if (iat === undefined || exp === undefined || iat > now || exp - iat > 86_400)
      return error(400, 'invalid_grant', 'ID Token issued at time or lifetime is invalid.');
    const sub = String(payload['sub'] ?? '');
    if (new TextEncoder().encode(sub).length > 127)
      return error(400, 'invalid_request', 'The size of mapped attribute google.subject exceeds the 127 bytes limit.');
    if (!this.config.admitted.includes(sub)) return error(400, 'unauthorized_client', 'The given credential is rejected by the attribute condition.');
    const accessToken = `ya29.fed-${crypto.randomUUID()}`;
    this.#federated.set(accessToken, sub);
    return {
      status: 200,
      body: { access_token: accessToken, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 },
    };
  }
}
