import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { RequestIdVariables } from 'hono/request-id';
import type { Logger } from '../../core/log.ts';
import type { RequestLimits } from '../../core/limits/request-limits.ts';
import type { RateLimitedError } from '../../core/limits/rate-limited-error.ts';
import type { BrokerMetrics } from '../../features/metrics/broker-metrics.ts';
import { shedBeforeBody } from '../middleware/rate-limit.ts';
import { refuseRevokedTokens } from '../middleware/refuse-revoked.ts';
import type { RevocationDeps } from '../../core/revocation/examine-token.ts';
import type { Refusal } from '../../core/errors/reasons.ts';
import { revokeToken, type PendingGitHubTokens, type RefusedRevocation, type Revoker, type RevokeDeps } from '../../core/revocation/rfc7009-revoke.ts';
import {
  EXAMINATION_BODY_BYTES,
  refuseMalformedExamination,
  type ExaminationEndpoint,
  type MalformedExamination,
} from '../../core/revocation/malformed-examination.ts';
import { HANDED_BACK_HEADER } from '../../core/revocation/handed-back-tokens.ts';
import { TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import { introspectToken } from '../../core/revocation/rfc7662-introspect.ts';
import { revokeByJti, type RevocationByJti } from '../../core/revocation/revoke-by-jti.ts';
import * as v from 'valibot';
import { jsonBodyLimit, readJsonBody } from './json-request-body.ts';
import { isFormEncoded } from './form-request-body.ts';
import { bodyLimit } from '../middleware/body-limit.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { ownKeys } from '../middleware/own-keys.ts';
import { NO_STORE, OAUTH_ERRORS } from '../oauth-errors.ts';
import { requestContext } from '../request-context.ts';

/** Scopes of the operator's (or resource server's) keyway token: to end any token, and to ask about one. */
export const TOKENS_REVOKE_SCOPE = 'tokens:revoke';
export const TOKENS_INTROSPECT_SCOPE = 'tokens:introspect';

/** The broker's issuer and keys come with `own`, as for every route that takes its tokens. */
export interface RevocationRouteDeps extends Omit<RevocationDeps, 'keys' | 'issuer'> {
  readonly log: Logger;
  /**
   * The limits of `/token`: an unauthenticated revocation is shed by the per-client and global ones before its body is read, as an
   * exchange is; introspection and an operator's revocation by the per-client one only, as the operator APIs are.
   */
  readonly limits: RequestLimits;
  readonly clientIp: (c: Context) => string | undefined;
  /** Where every revocation a limit refused (and every record the unverified budget kept out) is counted. */
  readonly metrics: Pick<BrokerMetrics, 'rateLimited'>;
  /** With a GitHub App: the GitHub tokens the broker issued, which their holders may hand back to `/revoke`. */
  readonly github?: PendingGitHubTokens;
}

type Env = { Variables: KeywayAuthVariables & RequestIdVariables };

const invalidRequest = (description: string) => ({ error: 'invalid_request', error_description: description });
/** `POST /v1/tokens/revoke`'s body: the `jti` of a keyway token, as its grant record's `issued.jti` gives it. */
const JTI_BODY = v.strictObject({
  jti: v.pipe(v.string('jti must be a string'), v.minLength(1, 'jti is empty'), v.maxLength(256, 'jti is longer than 256 characters')),
});

/**
 * `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662) for keyway's own access tokens; `/revoke` takes back the GitHub
 * installation tokens the broker issued too. Revoking needs no other credential than the token itself (its holder ends it; a DPoP-bound one with a
 * `DPoP` proof of its key) unless an `Authorization` header comes, which must then be an operator's keyway token with `tokens:revoke`;
 * introspection needs a keyway token with `tokens:introspect`. Both are audited.
 */
export function revocationRoutes(deps: RevocationRouteDeps, own: OwnTokens): Hono<Env> {
  const routes = new Hono<Env>();
  const examine: RevokeDeps = { ...deps, issuer: own.issuer, keys: ownKeys(own.keys), dpopReplay: own.dpopReplay };
  const operator = (scope: string) => operatorAuth(own, [scope]);
  const revoker = operator(TOKENS_REVOKE_SCOPE);
  // A resource server introspects on its hot path, and an operator revokes in an incident: a flood of exchanges from elsewhere,
  // which spends the global bucket, must not lock them out (verifyAccessToken takes a 429 for a revoked token).
  const shedAsOperator = shedBeforeBody(deps.limits.forClient, deps.clientIp);
  const countRevocation = (limited: RateLimitedError) => deps.metrics.rateLimited(limited.limit, 'revoke');
  const shedRevocationAsOperator = shedBeforeBody(deps.limits.forClient, deps.clientIp, countRevocation);
  const shedRevocationAsHolder = shedBeforeBody(deps.limits.beforeVerification, deps.clientIp, countRevocation);
  const shedRevocation: MiddlewareHandler = (c, next) =>
    (c.req.header('authorization') === undefined ? shedRevocationAsHolder : shedRevocationAsOperator)(c, next);
  const tokenOf = async (c: Context<Env>): Promise<{ readonly token: string } | { readonly malformed: MalformedExamination }> => {
    if (!isFormEncoded(c.req.header('content-type'))) return { malformed: 'not_form_encoded' };
    const body = await c.req.arrayBuffer().catch(() => undefined);
    if (body === undefined) return { malformed: 'body_incomplete' };
    const [token, ...more] = new URLSearchParams(new TextDecoder().decode(body)).getAll('token');
    if (token === undefined) return { malformed: 'no_token' };
    if (more.length > 0) return { malformed: 'several_tokens' };
    return token === '' ? { malformed: 'empty_token' } : { token };
  };
  // The audit log or the revocation list cannot be written or read: nothing was done, and the caller may retry.
  const answer = async (c: Context<Env>, work: () => Promise<Response>): Promise<Response> => {
    try {
      return await work();
    } catch (error) {
      deps.log.error('revocation or introspection failed', { request_id: c.get('requestId'), error: String(error) });
      return c.json({ error: 'temporarily_unavailable', error_description: 'the revocation list or the audit log is unavailable; retry later' }, 503, NO_STORE);
    }
  };
  const context = (c: Context<Env>) => requestContext(c, deps.clientIp);
  // Both routes check an Authorization header before they read the body: with one, the caller is the operator it verified.
  const callerOf = (c: Context<Env>) => (c.req.header('authorization') === undefined ? ({ holder: true } as const) : { operator: c.get('keywayToken').sub });
  // A refusal the core recorded: the unverified budget's 429 in its stead when the budget refused it.
  const refusal = (
    c: Context<Env>,
    error: string,
    refused: RefusedRevocation['refused'],
    limited: RateLimitedError | undefined,
    status: (typeof OAUTH_ERRORS)[Refusal]['status'] = 400,
  ): Response => {
    const recorded = refused.auditEventId === undefined ? {} : { audit_event_id: refused.auditEventId };
    if (limited === undefined) return c.json({ error, error_description: refused.message, ...recorded }, status, NO_STORE);
    deps.metrics.rateLimited(limited.limit, 'revoke');
    const retryAfter = { ...NO_STORE, 'Retry-After': String(limited.retryAfterSeconds) };
    return c.json({ error: 'temporarily_unavailable', error_description: refused.message, ...recorded }, 429, retryAfter);
  };
  const refuseMalformed = (c: Context<Env>, endpoint: ExaminationEndpoint, problem: MalformedExamination) =>
    answer(c, async () => {
      const { refused, limited, reason } = await refuseMalformedExamination(examine, endpoint, callerOf(c), problem, context(c));
      const { status, error } = OAUTH_ERRORS[reason];
      return refusal(c, error, refused, limited, status);
    });
  // A body over the limit, or one that ended before it was received whole (the client left, or ran out of time), holds no token to examine.
  const limit = (endpoint: ExaminationEndpoint) =>
    bodyLimit({
      maxSize: EXAMINATION_BODY_BYTES,
      onError: (c) => refuseMalformed(c as Context<Env>, endpoint, 'body_too_large'),
      onIncomplete: (c) => refuseMalformed(c as Context<Env>, endpoint, 'body_incomplete'),
    });

  // A revoked operator token is refused after the shed, and only once the broker's keys verified its signature: a flood of
  // forged tokens naming any jti costs no read of the revocation list (a Durable Object call on Workers).
  // Said on every 200, whatever the token (RFC 7009): which tokens this broker takes back, not whether it took this one.
  const handedBack = deps.github === undefined ? NO_STORE : { ...NO_STORE, [HANDED_BACK_HEADER]: TOKEN_TYPE.githubInstallationToken };
  const refuseRevoked = refuseRevokedTokens(deps.revocations, examine.keys, deps.now, own.refusals);
  routes.post(
    '/revoke',
    shedRevocation,
    refuseRevoked,
    // An operator only when an Authorization header comes. keywayAuth is typed for its own variables; this router also has the request id's.
    async (c, next) => (c.req.header('authorization') === undefined ? next() : revoker(c as unknown as Context<{ Variables: KeywayAuthVariables }>, next)),
    limit('/revoke'),
    async (c) => {
      const form = await tokenOf(c);
      if ('malformed' in form) return refuseMalformed(c, '/revoke', form.malformed);
      const dpopProof = c.req.header('dpop');
      const caller = callerOf(c);
      const asker: Revoker = 'holder' in caller && dpopProof !== undefined ? { ...caller, dpopProof } : caller;
      return answer(c, async () => {
        const { refused, limited } = await revokeToken(examine, form.token, asker, context(c));
        // A bound token's holder sent no proof of its key, or a bad one (RFC 9449 §5's answer at an authorization server).
        if (refused !== undefined) return refusal(c, 'invalid_dpop_proof', refused, limited);
        if (limited !== undefined) deps.metrics.rateLimited(limited.limit, 'revoke');
        return c.body(null, 200, handedBack);
      });
    },
  );
  // An operator who knows a token only from the audit log (an incident) ends it by the jti its grant record names.
  routes.post('/v1/tokens/revoke', revoker as unknown as MiddlewareHandler<Env>, jsonBodyLimit(EXAMINATION_BODY_BYTES), async (c) => {
    const body = await readJsonBody(c, JTI_BODY);
    if (!body.ok) return body.answer;
    const { jti } = body.value;
    const operatorSub = c.get('keywayToken').sub;
    return answer(c, async () => {
      const outcome = await revokeByJti(examine, jti, operatorSub, context(c));
      deps.log.info('token revocation by jti', { by: operatorSub, jti, status: outcome.status });
      const [answered, status] = jtiRevocationAnswer(jti, outcome);
      return c.json(answered, status, NO_STORE);
    });
  });
  routes.post('/introspect', shedAsOperator, refuseRevoked, operator(TOKENS_INTROSPECT_SCOPE), limit('/introspect'), async (c) => {
    const form = await tokenOf(c);
    if ('malformed' in form) return refuseMalformed(c, '/introspect', form.malformed);
    return answer(c, async () => c.json(await introspectToken(examine, form.token, c.get('keywayToken').sub, context(c)), 200, NO_STORE));
  });
  return routes;
}

function jtiRevocationAnswer(jti: string, outcome: RevocationByJti): [Record<string, unknown>, 200 | 400 | 404] {
  switch (outcome.status) {
    case 'not_found':
      return [
        {
          error: 'not_found',
          error_description:
            "the audit log holds no grant of a keyway token with this jti: another broker issued it, its record was pruned, or none was (a proxied call's credential, proxy.credential.jti, lives 60 s for its one call and is not revoked)",
        },
        404,
      ];
    case 'cloud_token':
      return [
        invalidRequest(`the jti is a cloud token's (granted in ${outcome.grantedIn}): the cloud checks it, not keyway; end its session in the cloud`),
        400,
      ];
    case 'revoked':
      return [{ jti, status: outcome.status, exp: outcome.exp, granted_in: outcome.grantedIn, audit_event_id: outcome.auditEventId }, 200];
    default:
      return [{ jti, status: outcome.status, exp: outcome.exp, granted_in: outcome.grantedIn }, 200];
  }
}
