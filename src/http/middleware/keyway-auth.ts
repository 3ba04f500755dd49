import type { Context, MiddlewareHandler } from 'hono';
import { parseCredentials } from '../../core/authorization-credentials.ts';
import { DPOP_ALGORITHMS } from '../../core/dpop/dpop-proof.ts';
import { DpopReplayUnavailableError } from '../../core/dpop/dpop-replay.ts';
import { AccessTokenError, verifyAccessToken, type KeywayAccessToken, type VerifyAccessTokenOptions } from '../../core/mint/verify-access-token.ts';
import type { RecordedRefusal } from '../../core/revocation/operator-refusal.ts';
import { NO_STORE } from '../oauth-errors.ts';

export type KeywayAuthVariables = { keywayToken: KeywayAccessToken };

export interface KeywayAuthOptions extends VerifyAccessTokenOptions {
  /**
   * The origin clients address this service at (`https://deploy.acme.dev`), when a proxy in front
   * of it makes the request URL the service sees another one: a DPoP proof's `htu` is checked
   * against this origin and the request's path. Without it, against the request URL as received.
   */
  readonly externalOrigin?: string;
}

/**
 * Protects a route with a keyway access token: `Authorization: Bearer <token>`, or for a token bound
 * to a DPoP key `Authorization: DPoP <token>` with a `DPoP` proof header (RFC 9449 §7), verified
 * as RFC 9068 requires. Answers RFC 6750 errors: 401 without a valid token or proof, 403 without
 * the scopes; 503 when whether the proof was used before cannot be checked. The verified claims
 * are on `c.get('keywayToken')`.
 */
export function keywayAuth(options: KeywayAuthOptions): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  return authenticate(options, undefined);
}

/**
 * What the broker's own routes do with a refusal (`token`: the credential, when one came): record it, and say how to
 * answer. A refusal it recorded carries the record's id (`audit_event_id`); one past the budget of its records is
 * answered with the limit's 429 instead.
 */
export type RecordRefusal = (c: Context, token: string | undefined, error: AccessTokenError) => Promise<RecordedRefusal>;

/** keywayAuth for the broker's own routes, every refusal recorded by `recorded`. */
export function recordedKeywayAuth(options: KeywayAuthOptions, recorded: RecordRefusal): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  return authenticate(options, recorded);
}

/**
 * The answer to a refused credential: RFC 6750's error (`challenge` in WWW-Authenticate; 403 for a missing scope, else 401)
 * with the id of its record; past the budget of such records, the limit's 429 instead.
 */
export function refusalAnswer(
  c: Context,
  recorded: RecordedRefusal,
  refusal: { readonly code: AccessTokenError['code']; readonly description: string; readonly challenge: string },
): Response {
  const id = recorded.auditEventId === undefined ? {} : { audit_event_id: recorded.auditEventId };
  if (recorded.limited !== undefined) {
    return c.json({ error: 'temporarily_unavailable', error_description: recorded.limited.message, ...id }, 429, {
      ...NO_STORE,
      'Retry-After': String(recorded.limited.retryAfterSeconds),
    });
  }
  c.header('WWW-Authenticate', refusal.challenge);
  return c.json({ error: refusal.code, error_description: refusal.description, ...id }, refusal.code === 'insufficient_scope' ? 403 : 401);
}

function authenticate(options: KeywayAuthOptions, recorded: RecordRefusal | undefined): MiddlewareHandler<{ Variables: KeywayAuthVariables }> {
  const required = (options.scopes ?? []).join(' ');
  const refuse = async (c: Context, token: string | undefined, error: AccessTokenError, challenge: string, description: string): Promise<Response> =>
    refusalAnswer(c, (await recorded?.(c, token, error)) ?? {}, { code: error.code, description, challenge });
  return async (c, next) => {
    const credentials = parseCredentials(c.req.header('authorization'));
    if (credentials === undefined) {
      const missing = new AccessTokenError('invalid_token', 'no Bearer or DPoP access token in the Authorization header');
      return refuse(c, undefined, missing, 'Bearer', 'a Bearer access token is required');
    }
    const { scheme, token } = credentials;
    const url = options.externalOrigin === undefined ? c.req.url : `${options.externalOrigin}${new URL(c.req.url).pathname}`;
    const dpop = scheme === 'DPoP' ? { proof: c.req.header('dpop'), method: c.req.method, url } : undefined;
    try {
      c.set('keywayToken', await verifyAccessToken(token, options, dpop));
    } catch (error) {
      if (error instanceof DpopReplayUnavailableError) {
        return c.json({ error: 'temporarily_unavailable', error_description: 'the DPoP proof cannot be checked right now; retry later' }, 503, NO_STORE);
      }
      if (!(error instanceof AccessTokenError)) throw error;
      const scope = error.code === 'insufficient_scope' && required !== '' ? `, scope="${required}"` : '';
      const algs = scheme === 'DPoP' ? `, algs="${DPOP_ALGORITHMS.join(' ')}"` : '';
      return refuse(c, token, error, `${scheme} error="${error.code}"${scope}${algs}`, DESCRIPTIONS[error.code]);
    }
    await next();
  };
}

const DESCRIPTIONS = {
  invalid_token: 'the access token is not valid',
  insufficient_scope: 'the token lacks a required scope',
  invalid_dpop_proof: 'the DPoP proof is not valid for this request and token',
} as const satisfies Record<AccessTokenError['code'], string>;
