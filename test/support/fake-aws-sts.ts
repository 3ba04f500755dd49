import { Hono } from 'hono';
import { createLocalJWKSet, decodeJwt, errors, jwtVerify } from 'jose';
import { fetchIssuerKeys } from './issuer-keys.ts';
import { serveOnLoopback } from './serve-on-loopback.ts';

/**
 * AWS STS's AssumeRoleWithWebIdentity on loopback, written from AWS's documentation
 * (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html,
 * CreateOpenIDConnectProvider, IAM session tags). Like AWS it fetches the provider's
 * /.well-known/openid-configuration and the JWKS it names (within 5 s), verifies the signature
 * with RS/ES 256-512 only, and holds `aud` to the provider's client IDs, `iss` to a provider
 * configured in the account, `exp` (5 minutes of grace), the token's size, the role's trust
 * conditions on `aud` and `sub`, sts:TagSession for session tags and AWS's tag limits. It
 * answers in the documented XML shapes. What it cannot check: TLS and thumbprints (loopback is
 * plain HTTP), AWS's JWKS cache lifetime, the packed size of tags and policies.
 */
export interface FakeRole {
  readonly arn: string;
  /** The trust policy's StringEquals conditions: `<provider>:aud` and `<provider>:sub`. */
  readonly sub: string;
  readonly aud?: string;
  /** Whether the trust policy allows sts:TagSession. */
  readonly tagSession?: boolean;
  readonly maxSessionSeconds?: number;
}

export interface FakeStsCall {
  readonly roleArn: string;
  readonly roleSessionName: string;
  readonly outcome: string;
  readonly sessionTags?: Readonly<Record<string, string>>;
}

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];
const TAGS_CLAIM = 'https://aws.amazon.com/tags';
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

class StsError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const xmlText = (text: string) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

export class FakeAwsSts {
  readonly calls: FakeStsCall[] = [];
  /** Answer the next N calls with 503, as a throttled or failing endpoint does. */
  failNext = 0;
  #close: () => Promise<void> = async () => {};
  url = '';

  /** The OIDC provider configured in the account: its issuer URL and client-ID list. */
  provider: { readonly issuer: string; readonly clientIds: readonly string[] };
  readonly roles: readonly FakeRole[];

  private constructor(provider: FakeAwsSts['provider'], roles: readonly FakeRole[]) {
    this.provider = provider;
    this.roles = roles;
  }

  static async start(provider: FakeAwsSts['provider'], roles: readonly FakeRole[]): Promise<FakeAwsSts> {
    const sts = new FakeAwsSts(provider, roles);
    const app = new Hono();
    app.post('/', async (c) => {
      if (sts.failNext > 0) {
        sts.failNext -= 1;
        return c.text('<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try again</Message></Error></ErrorResponse>', 503);
      }
      const form = new URLSearchParams(await c.req.text());
      const requestId = crypto.randomUUID();
      try {
        const result = await sts.#assume(form);
        c.header('content-type', 'text/xml');
        return c.body(
          `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>${result}</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
        );
      } catch (error) {
        if (!(error instanceof StsError)) throw error;
        sts.calls.push({ roleArn: form.get('RoleArn') ?? '', roleSessionName: form.get('RoleSessionName') ?? '', outcome: error.code });
        c.header('content-type', 'text/xml');
        return c.body(
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${error.code}</Code><Message>${xmlText(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
          error.status as 400,
        );
      }
    });
    const served = await serveOnLoopback(app.fetch);
    sts.url = served.base;
    sts.#close = served.close;
    return sts;
  }

  close(): Promise<void> {
    return this.#close();
  }

  async #assume(form: URLSearchParams): Promise<string> {
    if (form.get('Action') !== 'AssumeRoleWithWebIdentity' || form.get('Version') !== '2011-06-15')
      throw new StsError(400, 'InvalidAction', 'Could not find operation');
    const roleArn = form.get('RoleArn') ?? '';
    const session = form.get('RoleSessionName') ?? '';
    const token = form.get('WebIdentityToken') ?? '';
    const duration = Number(form.get('DurationSeconds') ?? 3600);
    if (!/^[\w+=,.@-]{2,64}$/.test(session))
      throw new StsError(400, 'ValidationError', "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint");
    if (token.length < 4 || token.length > 20000)
      throw new StsError(400, 'ValidationError', "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint");
    const role = this.roles.find((candidate) => candidate.arn === roleArn);
    if (!Number.isInteger(duration) || duration < 900 || duration > (role?.maxSessionSeconds ?? 3600)) {
      throw new StsError(400, 'ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
    }
    let claimed: Record<string, unknown>;
    try {
      claimed = decodeJwt(token);
    } catch {
      throw new StsError(400, 'InvalidIdentityToken', 'The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)');
    }
    if (claimed['iss'] !== this.provider.issuer)
      throw new StsError(400, 'InvalidIdentityToken', `No OpenIDConnect provider found in your account for ${String(claimed['iss'])}`);
    let payload: Record<string, unknown>;
    try {
      const keys = await fetchIssuerKeys(this.provider.issuer).catch(() => {
        throw new StsError(
          400,
          'IDPCommunicationError',
          "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
        );
      });
      ({ payload } = await jwtVerify(token, createLocalJWKSet(keys), { algorithms: ALGORITHMS, clockTolerance: 300 }));
    } catch (error) {
      if (error instanceof StsError) throw error;
      if (error instanceof errors.JWTExpired)
        throw new StsError(400, 'ExpiredTokenException', 'Token expired: current date/time must be before the expiration date/time');
      throw new StsError(400, 'InvalidIdentityToken', "Couldn't verify the signature of the token");
    }
    const aud = typeof payload['aud'] === 'string' ? [payload['aud']] : Array.isArray(payload['aud']) ? payload['aud'] : [];
    if (!aud.some((value) => this.provider.clientIds.includes(String(value)))) throw new StsError(400, 'InvalidIdentityToken', 'Incorrect token audience');
    if (!Number.isInteger(payload['iat']) || !Number.isInteger(payload['exp']))
      throw new StsError(400, 'InvalidIdentityToken', 'Token timestamps are not integers');
    const sub = String(payload['sub'] ?? '');
    if (sub.length < 6 || sub.length > 255) throw new StsError(400, 'InvalidIdentityToken', 'The sub of the token is out of range');
    if (role === undefined || role.sub !== sub || (role.aud !== undefined && !aud.includes(role.aud))) {
      throw new StsError(403, 'AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity');
    }
    const sessionTags = this.#sessionTags(payload[TAGS_CLAIM], role);
    this.calls.push({ roleArn, roleSessionName: session, outcome: 'ok', ...(sessionTags === undefined ? {} : { sessionTags }) });
    const id = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase()}`;
    const assumed = `${roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${session}`;
    return [
      `<SubjectFromWebIdentityToken>${xmlText(sub)}</SubjectFromWebIdentityToken>`,
      `<Audience>${xmlText(String(aud[0]))}</Audience>`,
      `<AssumedRoleUser><Arn>${xmlText(assumed)}</Arn><AssumedRoleId>${id('AROA')}:${session}</AssumedRoleId></AssumedRoleUser>`,
      `<Credentials><SessionToken>${id('FwoGZXIvYXdzE')}/+${crypto.randomUUID()}=</SessionToken><SecretAccessKey>${crypto.randomUUID()}/a+b</SecretAccessKey>`,
      `<Expiration>${new Date(Date.now() + duration * 1000).toISOString()}</Expiration><AccessKeyId>${id('ASIA')}</AccessKeyId></Credentials>`,
      `<Provider>${xmlText(new URL(this.provider.issuer).host)}</Provider>`,
    ].join('');
  }

  #sessionTags(claim: unknown, role: FakeRole): Record<string, string> | undefined {
    if (claim === undefined) return undefined;
    if (role.tagSession !== true) throw new StsError(403, 'AccessDenied', 'Not authorized to perform sts:TagSession');
    const principal = (claim as { principal_tags?: Record<string, unknown> }).principal_tags ?? {};
    const entries = Object.entries(principal);
    const bad = (why: string) => new StsError(400, 'InvalidIdentityToken', `The session tags in the token are invalid: ${why}`);
    if (entries.length > 50) throw bad('more than 50 tags');
    const tags: Record<string, string> = {};
    for (const [key, values] of entries) {
      const value = Array.isArray(values) && values.length === 1 ? String(values[0]) : undefined;
      if (value === undefined) throw bad(`${key} does not have exactly one value`);
      if (key.length < 1 || key.length > 128 || !TAG_TEXT.test(key) || key.toLowerCase().startsWith('aws:')) throw bad(`key ${key}`);
      if (value.length > 256 || !TAG_TEXT.test(value)) throw bad(`value of ${key}`);
      tags[key] = value;
    }
    return tags;
  }
}
