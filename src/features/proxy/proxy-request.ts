import type { JWTPayload } from 'jose';
import { monotonicFactory } from 'ulid';
import type { AuditEvent, AuditEventDraft, AuditLog } from '../../core/audit/audit-event.ts';
import { parseCredentials } from '../../core/authorization-credentials.ts';
import { AUDIT_BOUNDS, boundAuditEvent, boundText } from '../../core/audit/bound-audit-event.ts';
import { describePresentedToken } from '../../core/audit/presented-token.ts';
import { pooledRandom } from '../../core/mint/pooled-random.ts';
import { DpopReplayUnavailableError } from '../../core/dpop/dpop-replay.ts';
import { ExchangeError } from '../../core/errors/exchange-error.ts';
import { REASONS, type Reason, type Refusal } from '../../core/errors/reasons.ts';
import type { RequestContext } from '../../core/exchange/exchange-token.ts';
import { actorsNamedBy } from '../../core/exchange/rfc8693-delegation.ts';
import type { ActorClaim } from '../../core/mint/mint-access-token.ts';
import type { RequestLimits } from '../../core/limits/request-limits.ts';
import { RateLimitedError } from '../../core/limits/rate-limited-error.ts';
import { refusalToAnswer, type AnsweredRefusal } from '../../core/limits/refusal-record.ts';
import { keepReplacedReason } from '../../core/limits/unverified-record-budget.ts';
import { callerAccount, OWN_TOKEN_TENANT_CLAIMS, subjectBucketKey, type CallerAccount, type VerifiedAs } from '../../core/claims/caller-account.ts';
import type { RateLimiter } from '../../core/limits/rate-limiter.ts';
import { errorText, type Logger } from '../../core/log.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from '../../core/mint/jwt-crypto.ts';
import { decide, knownToAnAllowPolicy, type IssuedGrant, type SubjectClaims } from '../../core/policy/decide.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import type { RevocationList } from '../../core/revocation/revocation-list.ts';
import { normaliseProxyPath } from '../../core/policy/proxy-path.ts';
import { callersGitHubAccount } from '../../core/policy/callers-github-account.ts';
import type { JwksCache } from '../../core/verify/jwks-cache.ts';
import { verifySubjectToken } from '../../core/verify/verify-subject-token.ts';
import { refuseEndedCiWork, type EndedCiWorkCheck } from '../../core/replay/ended-ci-work.ts';
import {
  callerResponseHeaders,
  echoesCredential,
  refusedImpersonationHeader,
  rewriteLinkTargets,
  unpassableAnswer,
  upstreamRequestHeaders,
} from './forward-headers.ts';
import { bodyNamesField, FIELD_NAMED, FIELD_REFUSED, formNamesField, QUERY_FIELDS, refusedRoutingHeader, unreadableBody } from './method-override.ts';
import { DEFAULT_PROXY_LIMITS } from './proxy-settings.ts';
import { cappedStream, redactedStream, type StreamEnd } from './capped-stream.ts';
import { githubScopeOf, pathByRepositoryId, pathByRepositoryName, type GitHubScope, type Upstream, type UpstreamCredentials } from './upstream-credential.ts';

export interface ProxyDeps {
  readonly issuer: string;
  readonly policies: () => PolicySet;
  readonly jwks: JwksCache;
  readonly audit: AuditLog;
  readonly now: () => number;
  readonly log: Logger;
  readonly clockToleranceSeconds: number;
  readonly crypto?: JwtCrypto;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly credentials: UpstreamCredentials;
  /** The broker's outbound fetch (public addresses only, redirects never followed). */
  readonly fetch: typeof fetch;
  readonly limits: RequestLimits;
  readonly limiter: RateLimiter;
  /**
   * Verifies a keyway access token presented to `/proxy/{upstream}` (its `aud` `{issuer}/proxy/{upstream}`), with the
   * broker's own keys and, for `Authorization: DPoP`, its proof; throws an Error whose message says why.
   */
  readonly verifyKeywayToken: (token: string, audience: string, dpop: boolean) => Promise<JWTPayload>;
  /** The keyway tokens revoked before their `exp` (`POST /revoke`, a job's end): one of them is refused here as at /v1/*. */
  readonly revocations: RevocationList;
  /** The GitHub Actions jobs and run attempts whose completion a webhook reported: their CI tokens are refused here as at /token. */
  readonly endedCiWork?: EndedCiWorkCheck;
}

/** The request as the HTTP layer hands it over: the upstream's name and the path after it exactly as received. */
export interface ProxyInput {
  readonly upstream: string;
  readonly method: string;
  /** The path after `/proxy/{upstream}` as the request target was sent, still percent-encoded, so dot segments are seen. */
  readonly rawPath: string;
  /** The query string without its `?`; empty when none. */
  readonly query: string;
  /** Why the request target as sent cannot be decided on, when the route found it so (an absolute form on Node). */
  readonly targetRefused?: string;
  readonly headers: Headers;
  readonly body: ReadableStream<Uint8Array> | null;
  readonly context: RequestContext;
}

/**
 * keyway's own answer (a refusal, or no record so no call), or the upstream's, streamed. `done` is work the answer leaves
 * running, which the runtime must let finish (Workers: waitUntil): the upstream's outcome record, or a credential still
 * being minted when the deadline refused the request.
 */
export type ProxyAnswer =
  | ProxyRefused
  | { readonly kind: 'unavailable'; readonly description: string }
  | { readonly kind: 'upstream'; readonly response: Response; readonly auditEventId: string; readonly done: Promise<void> };

type ProxyRefused = {
  readonly kind: 'refused';
  readonly reason: Refusal;
  readonly description: string;
  readonly auditEventId?: string;
  /** The limit whose budget it was past (counted in metrics), and for a rate limit's refusal when to retry. */
  readonly limited?: { readonly limit: string; readonly retryAfterSeconds?: number };
  readonly done?: Promise<void>;
};

const nextId = monotonicFactory(pooledRandom);
type ProxyRecord = NonNullable<AuditEvent['proxy']>;

class ProxyRefusal extends ExchangeError {}

/**
 * One proxied request: bound and normalise it, verify the caller as /token would, decide by
 * `grant.proxy`, make the decision durable, then call the upstream with keyway's credential and
 * stream its answer back within the caps. "No record, no call": nothing reaches the upstream
 * (nor GitHub for a token) before the decision record is durable; the outcome (status, bytes,
 * duration) is a second record once the answer has streamed, naming the first.
 */
export async function proxyRequest(deps: ProxyDeps, input: ProxyInput): Promise<ProxyAnswer> {
  const started = performance.now();
  const now = deps.now();
  const event: AuditEventDraft = {
    id: nextId(now),
    time: new Date(now).toISOString(),
    decision: 'error',
    reason: 'internal_error',
    request: requestFacts(input.context),
    proxy: { upstream: input.upstream, method: input.method, path: input.rawPath, query_bytes: input.query.length },
  };
  let allowed: Allowed;
  const verifiedAs: VerifiedAs = {};
  try {
    allowed = await authorize(deps, input, event, now, verifiedAs);
  } catch (error) {
    const failure = error instanceof ExchangeError ? error : new ExchangeError('internal_error', errorText(error), { cause: error });
    if (failure.reason === 'internal_error')
      deps.log.error('proxy request failed unexpectedly', { request_id: input.context.requestId, error: errorText(error) });
    const limited = await subjectLimitBeforeDecision(deps, event, failure, verifiedAs);
    const answered = await refusalToAnswer(deps, event, limited ?? failure, verifiedAs);
    // The limit's record keeps what it answered instead, as an operator credential's does.
    if (limited !== undefined) keepReplacedReason(event, failure.reason);
    if (!answered.recorded) return refusalOf(answered, undefined);
    const recorded = await append(deps, event, input.context, 'decision');
    report(deps, event, input.context);
    return recorded ? refusalOf(answered, event.id) : unavailable();
  }
  event.decision = 'granted';
  event.reason = 'granted';
  if (!(await append(deps, event, input.context, 'decision'))) return unavailable();
  return forward(deps, input, allowed, event, started);
}

/**
 * A verified caller refused before the policies decided (a revoked keyway token, a bound CI token, a job that ended) spends
 * its subject's budget, as every verified request at /token does before such a refusal: past it the limit's 429, the first of
 * a run recorded. Nothing else bounds what the holder of a known pipeline's token writes here: its account's refusal budget
 * is for strangers, and the per-caller bucket is taken after the decision.
 */
async function subjectLimitBeforeDecision(
  deps: ProxyDeps,
  event: AuditEventDraft,
  failure: ExchangeError,
  verifiedAs: VerifiedAs,
): Promise<RateLimitedError | undefined> {
  const { caller } = verifiedAs;
  if (caller === undefined || event.subject === undefined || event.policy !== undefined || failure instanceof RateLimitedError) return undefined;
  return deps.limits.forSubject(caller, event.subject);
}

interface Allowed {
  readonly upstream: Upstream;
  readonly grant: IssuedGrant;
  readonly source: { readonly iss: string; readonly sub: string };
  /** Who acts for the subject (RFC 8693 §4.1): the actors the caller's keyway token names in its `act`, the current one outermost. */
  readonly actors?: ActorClaim;
  readonly path: string;
  readonly scope: GitHubScope | undefined;
}

async function authorize(deps: ProxyDeps, input: ProxyInput, event: AuditEventDraft, now: number, verifiedAs: VerifiedAs): Promise<Allowed> {
  // First: every refusal below is a record, and anyone can send requests that earn one.
  const limited = await deps.limits.beforeVerification(input.context.clientIp);
  if (limited !== undefined) throw limited;
  // Then what holds for every upstream, the caller, and the policies. Whether an upstream of that name is declared is
  // told only to a caller a policy allows there: until then the answers are the same for every name.
  if (input.targetRefused !== undefined) throw new ProxyRefusal('proxy_path_refused', input.targetRefused, { public: true });
  const routing = refusedRoutingHeader(input.headers);
  if (routing !== undefined) throw new ProxyRefusal('proxy_header_refused', `${routing.name} is refused: ${routing.why}`, { public: true });
  const impersonation = refusedImpersonationHeader(input.headers);
  if (impersonation !== undefined) {
    throw new ProxyRefusal('proxy_header_refused', `${impersonation} is refused: the upstream acts as keyway's credential, never as whom a request names`, {
      public: true,
    });
  }
  if (input.headers.has('content-length') && input.headers.has('transfer-encoding')) {
    throw new ProxyRefusal('proxy_header_refused', 'Content-Length and Transfer-Encoding together are refused (request smuggling)', { public: true });
  }
  const normal = normaliseProxyPath(input.rawPath);
  if (!normal.ok) throw new ProxyRefusal('proxy_path_refused', normal.why, { public: true });
  setProxy(event, { path: normal.path });
  const queryField = formNamesField(input.query, QUERY_FIELDS);
  if (queryField !== undefined) {
    throw new ProxyRefusal('proxy_header_refused', `${FIELD_NAMED[queryField]} query parameter is refused: ${FIELD_REFUSED[queryField]}`, { public: true });
  }

  const policies = deps.policies();
  const caller = await authenticate(deps, input, policies, event, now, verifiedAs);
  const decision = decide(policies, caller, {
    audiences: [],
    scopes: undefined,
    proxy: { upstream: input.upstream, method: input.method, segments: normal.segments },
    ...(caller.actors === undefined ? {} : { actor: { claims: caller.actors, via: 'act' as const } }),
  });
  event.policy = {
    candidates: decision.trace.candidates,
    matched: decision.trace.matched,
    denied_by: decision.trace.deniedBy,
    audit_mode: decision.trace.audit,
    ...(policies.version === undefined ? {} : { set_version: policies.version }),
  };
  // A refused caller's rate is one bucket per caller at the default rate, whatever name it sent: no bucket per
  // invented name, and nothing that tells a declared upstream (or its own rate) from an undeclared one.
  const upstream = decision.granted ? deps.upstreams.get(input.upstream) : undefined;
  const perMinute = upstream?.limits.requestsPerMinute ?? DEFAULT_PROXY_LIMITS.requestsPerMinute;
  const callerLimit = { name: upstream === undefined ? 'proxy' : `proxy:${upstream.name}`, perMinute, burst: perMinute };
  // Its account too: GitHub signs another account's job the same sub when each chose the same claims for it (include_claim_keys).
  const who = subjectBucketKey(caller.account, String(caller.claims['sub']));
  const verdict = await deps.limiter.take(callerLimit, upstream === undefined ? `proxy\n${who}` : `proxy\n${upstream.name}\n${who}`, now);
  if (!verdict.allowed) throw new RateLimitedError(callerLimit, verdict.retryAfterSeconds, verdict.refused);
  // Its audience judged where the policies decide: no allow policy matches a token for an audience none accepts, so by
  // now it has spent what a caller no policy allows spends (this bucket; its account's refusal budget next) and is answered alike.
  if (caller.audienceRefused !== undefined) throw caller.audienceRefused;
  if (!decision.granted) throw new ProxyRefusal(decision.reason, decision.detail);
  const grant = decision.grant;
  event.policy = { ...event.policy, granted_by: grant.policy.id };
  // /proxy takes a proof only with a DPoP-bound keyway token: a CI token, or a keyway token sent as Bearer, has none.
  if (grant.policy.grant?.requireDpop === true && !caller.keyProven) {
    throw new ProxyRefusal('dpop_required', 'the granting policy requires a DPoP proof (grant.require_dpop): send a DPoP-bound keyway token as DPoP', {
      public: true,
    });
  }
  if (upstream === undefined) throw new ProxyRefusal('proxy_upstream_unknown', `no upstream named ${input.upstream} is declared`, { public: true });
  if (new TextEncoder().encode(input.query).length > upstream.limits.queryBytes) {
    throw new ProxyRefusal('request_too_large', `the query is longer than ${upstream.limits.queryBytes} bytes`, { public: true });
  }
  const length = Number(input.headers.get('content-length') ?? '0');
  if (!Number.isSafeInteger(length) || length < 0 || length > upstream.limits.requestBytes) {
    throw new ProxyRefusal('request_too_large', `the request body is larger than ${upstream.limits.requestBytes} bytes`, { public: true });
  }
  const permissions = grant.proxy?.permissions ?? {};
  const repository = upstream.auth.kind === 'github-app' ? githubScopeOf(normal.segments, permissions) : undefined;
  if (upstream.auth.kind === 'github-app' && repository === undefined) {
    throw new ProxyRefusal('proxy_not_allowed', 'a GitHub App upstream reaches /repos/{owner}/{repo}/... only: its token is scoped to one repository', {
      public: true,
    });
  }
  const deployment = deps.credentials.githubDeployment;
  const ownerId = repository === undefined ? undefined : (grant.proxy?.ownerId ?? callersGitHubAccount(caller, repository.owner, deployment));
  if (repository !== undefined && ownerId === undefined) {
    throw new ProxyRefusal(
      'proxy_not_allowed',
      `${repository.owner} is not the caller's own account: the allow rule must pin it by id (owner_id), since a login can be renamed and registered again`,
      { public: true },
    );
  }
  const scope = repository === undefined ? undefined : { ...repository, ownerId };
  setProxy(event, {
    ...(grant.proxy === undefined ? {} : { rule: grant.proxy.rule }),
    ...(scope === undefined ? {} : { credential: { repository: `${scope.owner}/${scope.repository}`, permissions: scope.permissions, owner_id: ownerId } }),
  });
  return {
    upstream,
    grant,
    source: { iss: caller.issuer.url, sub: String(caller.claims['sub']) },
    ...(caller.actors === undefined ? {} : { actors: caller.actors }),
    path: normal.path,
    scope,
  };
}

/**
 * The caller: a CI OIDC token, verified exactly as at /token (the central set's issuers), or a keyway
 * access token for `{issuer}/proxy/{upstream}`, verified with the broker's own keys and decided by
 * the policies that trust the broker as an issuer. A CI token for an audience no policy accepts comes back with the
 * refusal it earns (`audienceRefused`), which the caller throws where the policies decide, as at /token: a shared issuer
 * mints a job's token for whatever audience it names, and a stranger must not learn which ones the policies accept.
 */
async function authenticate(
  deps: ProxyDeps,
  input: ProxyInput,
  policies: PolicySet,
  event: AuditEventDraft,
  now: number,
  verifiedAs: VerifiedAs,
): Promise<
  SubjectClaims & { readonly account: CallerAccount; readonly keyProven: boolean; readonly actors?: ActorClaim; readonly audienceRefused?: ExchangeError }
> {
  const credentials = parseCredentials(input.headers.get('authorization'));
  if (credentials === undefined) throw new ProxyRefusal('proxy_unauthenticated', 'no Bearer or DPoP credential', { public: true });
  const { scheme, token } = credentials;
  const crypto = deps.crypto ?? JOSE_JWT_CRYPTO;
  const { described, decoded } = describePresentedToken(token, crypto.sha256Hex);
  event.subject_token = described;
  // Named as soon as its signature verified: a refusal after that (a revoked token, a thief's copy of a bound one, a job
  // that ended) is of that identity, recorded whatever the unverified budget, which strangers can spend.
  const identify = (issuer: string, claims: JWTPayload, tenantClaims: readonly string[]): CallerAccount => {
    event.issuer = issuer;
    event.subject = String(claims.sub);
    verifiedAs.caller = callerAccount(issuer, tenantClaims, claims);
    verifiedAs.knownToPolicies = () => knownToAnAllowPolicy(policies, issuer, claims);
    return verifiedAs.caller;
  };
  let verified: SubjectClaims & { readonly actors?: ActorClaim; readonly audienceRefused?: ExchangeError };
  let account: CallerAccount;
  if (decoded?.iss === deps.issuer || scheme === 'DPoP') {
    let claims: JWTPayload;
    try {
      claims = await deps.verifyKeywayToken(token, `${deps.issuer}/proxy/${input.upstream}`, scheme === 'DPoP');
    } catch (error) {
      if (error instanceof DpopReplayUnavailableError) throw new ExchangeError('replay_guard_unavailable', errorText(error), { cause: error });
      throw new ProxyRefusal('proxy_unauthenticated', `the keyway access token is not valid: ${errorText(error)}`);
    }
    account = identify(deps.issuer, claims, OWN_TOKEN_TENANT_CLAIMS);
    // A delegated token (a policy's match_actor let an actor act for its subject) is presented by that actor: the request's.
    const actors = actorsNamedBy(claims);
    if (actors !== undefined) event.actor = { ...(actors.iss === undefined ? {} : { issuer: actors.iss }), subject: actors.sub };
    await refuseRevoked(deps, claims, now);
    const issuer = policies.issuer(deps.issuer);
    if (issuer === undefined) throw new ProxyRefusal('issuer_untrusted', 'no policy trusts this broker as the issuer of proxied requests');
    verified = { issuer, claims, ...(actors === undefined ? {} : { actors }) };
  } else {
    const { token: subject, audienceRefused } = await verifySubjectToken(token, {
      issuers: policies,
      jwks: deps.jwks,
      now,
      clockToleranceSeconds: deps.clockToleranceSeconds,
      crypto,
      ...(decoded === undefined ? {} : { decoded }),
    });
    account = identify(subject.issuer.url, subject.claims, subject.issuer.preset.tenantClaims);
    // A CI token bound to a key (cnf) is good only with a proof of that key, which /proxy does not take: a thief's copy is refused.
    if (subject.claims['cnf'] !== undefined) {
      throw new ProxyRefusal('subject_token_bound', 'the CI token is bound to a key (cnf); proxied requests take no proof of it', { public: true });
    }
    await refuseEndedCiWork(deps.endedCiWork, subject, now);
    verified = { issuer: subject.issuer, claims: subject.claims, ...(audienceRefused === undefined ? {} : { audienceRefused }) };
  }
  event.claims = policies.recordedClaims(verified.issuer.url, verified.claims);
  // Verified as DPoP: the proof of the keyway token's key was checked with it.
  return { ...verified, account, keyProven: scheme === 'DPoP' };
}

/** A verified keyway token that was revoked is refused as one that does not verify; an unreadable list refuses too (fail closed). */
async function refuseRevoked(deps: ProxyDeps, claims: JWTPayload, now: number): Promise<void> {
  if (typeof claims.jti !== 'string') throw new ProxyRefusal('proxy_unauthenticated', 'the keyway access token has no jti');
  let revoked: boolean;
  try {
    revoked = await deps.revocations.isRevoked(claims.jti, now);
  } catch (error) {
    throw new ProxyRefusal('proxy_revocation_unavailable', `the revocation list cannot be read: ${errorText(error)}`, { cause: error });
  }
  if (revoked) throw new ProxyRefusal('proxy_unauthenticated', 'the keyway access token was revoked', { public: true });
}

/** The upstream call, after the decision record is durable: keyway's credential, the caps, the deadline, no redirect followed. */
async function forward(deps: ProxyDeps, input: ProxyInput, allowed: Allowed, decided: AuditEventDraft, started: number): Promise<ProxyAnswer> {
  const { upstream } = allowed;
  // Once keyway holds the upstream credential, each outcome record names what it minted (never the credential).
  let minted: Partial<ProxyRecord> = {};
  const outcome = (reason: Reason, facts: Partial<ProxyRecord>, detail?: string): Promise<string | undefined> =>
    recordOutcome(deps, input.context, decided, reason, { ...minted, ...facts, duration_ms: Math.round(performance.now() - started) }, detail);
  // keyway's own answer after the decision: it names the outcome record, which holds the reason (and names the decision).
  const fail = async (reason: Refusal, detail: string, facts: Partial<ProxyRecord> = {}): Promise<ProxyRefused> => {
    const id = await outcome(reason, facts, detail);
    return { kind: 'refused', reason, description: REASONS[reason].description, ...(id === undefined ? {} : { auditEventId: id }) };
  };

  const deadline = AbortSignal.timeout(upstream.limits.timeoutSeconds * 1000);
  // The request body is read whole (within its cap) before the upstream is called: a stream cut short by the cap could
  // otherwise reach the upstream as a complete, shorter body (workerd ends a chunked request when its source errors).
  // Bound by the same deadline: a caller that stalls its upload holds nothing open longer than the upstream could.
  // Read and checked before the credential, so a refused body costs no installation token.
  const body =
    input.body === null || input.method === 'GET' || input.method === 'HEAD' ? undefined : await readCapped(input.body, upstream.limits.requestBytes, deadline);
  if (body === 'too_large') return fail('request_too_large', `the request body is larger than ${upstream.limits.requestBytes} bytes`);
  if (body === 'broken') return fail('malformed_request', `the request body broke off or did not arrive within ${upstream.limits.timeoutSeconds} s`);
  if (body !== undefined) {
    const unreadable = unreadableBody(input.headers.get('content-type'), input.headers.get('content-encoding'), input.method);
    if (unreadable !== undefined) return fail('proxy_header_refused', unreadable);
    const field = bodyNamesField(body, input.headers.get('content-type'), input.method);
    if (field === 'unreadable') return fail('proxy_header_refused', 'a body whose field names readers would read differently is refused');
    if (field !== undefined) return fail('proxy_header_refused', `${FIELD_NAMED[field]} field in the request body is refused: ${FIELD_REFUSED[field]}`);
  }
  // A caller that stalled its upload until the deadline gets no credential minted for a call that cannot be made.
  if (deadline.aborted) return fail('proxy_upstream_timeout', `the request did not reach upstream ${upstream.name} within ${upstream.limits.timeoutSeconds} s`);

  const minting = deps.credentials.for(upstream, allowed, allowed.scope, decided.id);
  let credential;
  try {
    credential = await Promise.race([minting, expiry(deadline)]);
  } catch (error) {
    // The installation under the owner's name is on another account than the one pinned: refused, not unavailable.
    if (error instanceof ExchangeError && error.reason === 'github_owner_mismatch') return fail(error.reason, error.message);
    deps.log.error('proxy credential unavailable', { request_id: input.context.requestId, upstream: upstream.name, error: errorText(error) });
    return fail('proxy_upstream_unavailable', `no credential for upstream ${upstream.name}: ${errorText(error)}`);
  }
  if (credential === 'expired') {
    const refused = await fail('proxy_upstream_timeout', `no credential for upstream ${upstream.name} within ${upstream.limits.timeoutSeconds} s`);
    // The mint goes on after the answer: a token GitHub mints must still reach its revocation schedule (and the cache),
    // and the log must name it, since the records so far say no credential was had.
    const abandoned = minting.then(
      async (late) => {
        // Only a token this request minted is new: one from the cache was named by the request that minted it.
        if (late.revokeNow === undefined || late.recorded === undefined) return;
        const credential = { ...decided.proxy?.credential, ...late.recorded };
        const detail = `minted after the ${upstream.limits.timeoutSeconds} s deadline had answered the request; unused by it, reused by later ones, revoked at expires_at`;
        if ((await outcome('proxy_credential_late', { credential }, detail)) !== undefined) return;
        // No record, no token: one the log does not name is taken back at once.
        await late.revokeNow().catch((error: unknown) =>
          deps.log.error('unrecorded proxy credential not revoked; the revocation round retries it', {
            request_id: input.context.requestId,
            upstream: upstream.name,
            error: errorText(error),
          }),
        );
      },
      (error: unknown) =>
        deps.log.error('proxy credential unavailable', { request_id: input.context.requestId, upstream: upstream.name, error: errorText(error) }),
    );
    return { ...refused, done: abandoned };
  }
  if (credential.recorded !== undefined) minted = { credential: { ...decided.proxy?.credential, ...credential.recorded } };
  const base = upstream.url ?? (deps.credentials.githubApiUrl ?? '').replace(/\/$/, '');
  const path = credential.repositoryId === undefined ? allowed.path : pathByRepositoryId(allowed.path, credential.repositoryId);
  const target = `${base}${path === '/' ? '' : path}${input.query === '' ? '' : `?${input.query}`}`;
  const sent = upstreamRequestHeaders(input.headers);
  sent.set(credential.header, credential.value);
  let response: Response;
  try {
    response = await deps.fetch(target, { method: input.method, headers: sent, signal: deadline, redirect: 'manual', ...(body === undefined ? {} : { body }) });
  } catch (error) {
    if (deadline.aborted) return fail('proxy_upstream_timeout', `upstream ${upstream.name} did not answer within ${upstream.limits.timeoutSeconds} s`);
    return fail('proxy_upstream_unavailable', `upstream ${upstream.name} could not be reached: ${errorText(error)}`);
  }
  const unusable = unpassableAnswer(response);
  if (unusable !== undefined) {
    await response.body?.cancel();
    return fail('proxy_upstream_unavailable', `upstream ${upstream.name} answered ${unusable}`, { status: response.status });
  }

  const headers = callerResponseHeaders(response.headers, credential.secret);
  const proxyBase = `${deps.issuer}/proxy/${upstream.name}`;
  const callerPathOf = (upstreamPath: string): string =>
    credential.repositoryId === undefined ? upstreamPath : pathByRepositoryName(upstreamPath, allowed.path, credential.repositoryId);
  // A page link to the upstream itself (GitHub's pagination) leads back through keyway, so a client that follows it
  // keeps keyway's credential and never sends its own to the upstream; a link elsewhere passes as it is.
  const link = headers.get('link');
  if (link !== null) {
    const rewritten = rewriteLinkTargets(link, (reference) => sameUpstreamLocation(reference, target, base, proxyBase, callerPathOf));
    // Checked again once rewritten: the URL parser drops tabs and newlines, which could join a credential split by them.
    if (echoesCredential(rewritten, credential.secret)) headers.delete('link');
    else headers.set('link', rewritten);
  }
  const redirected = response.status >= 300 && response.status < 400 && response.headers.has('location');
  if (redirected) {
    const location = sameUpstreamLocation(response.headers.get('location')!, target, base, proxyBase, callerPathOf);
    if (location === undefined) {
      await response.body?.cancel();
      return fail('proxy_redirect_refused', `upstream ${upstream.name} redirected to another host; not followed`, { status: response.status });
    }
    // The rewritten Location is keyway's own header: the credential check on the upstream's headers does not cover it.
    if (echoesCredential(location, credential.secret)) {
      await response.body?.cancel();
      return fail('proxy_redirect_refused', `upstream ${upstream.name} redirected with its credential in the Location; not passed on`, {
        status: response.status,
      });
    }
    headers.set('location', location);
  }
  // A Location that is no redirect's (a 201's new resource) and a Content-Location (the URL of what the body is): nothing
  // follows either on its own, so each is treated as a page link is.
  for (const name of redirected ? ['content-location'] : ['location', 'content-location']) {
    const given = response.headers.get(name);
    const location = given === null ? undefined : sameUpstreamLocation(given, target, base, proxyBase, callerPathOf);
    if (location !== undefined && echoesCredential(location, credential.secret)) headers.delete(name);
    else if (location !== undefined) headers.set(name, location);
  }
  const announced = Number(response.headers.get('content-length') ?? '0');
  if (announced > upstream.limits.responseBytes) {
    await response.body?.cancel();
    return fail('proxy_response_too_large', `upstream ${upstream.name} announced ${announced} bytes; at most ${upstream.limits.responseBytes} pass`, {
      status: response.status,
    });
  }
  const responseBytes: StreamEnd = { bytes: 0, error: undefined };
  const passed = response.body === null ? undefined : cappedStream(response.body, upstream.limits.responseBytes, responseBytes, deadline);
  const done = (passed?.ended ?? Promise.resolve()).then((): Promise<unknown> => {
    const facts = { status: response.status, request_bytes: body?.byteLength ?? 0, response_bytes: responseBytes.bytes };
    if (responseBytes.error === 'too_large') return outcome('proxy_response_too_large', facts, `the answer passed ${upstream.limits.responseBytes} bytes; cut`);
    if (responseBytes.error === 'timeout') return outcome('proxy_upstream_timeout', facts, `the answer did not end within ${upstream.limits.timeoutSeconds} s`);
    if (responseBytes.error !== undefined) return outcome('proxy_upstream_unavailable', facts, `the answer broke off: ${responseBytes.error}`);
    if (responseBytes.readerLeft === true) return outcome('proxy_completed', facts, 'the caller stopped reading the answer before its end');
    return outcome('proxy_completed', facts);
  });
  return {
    kind: 'upstream',
    // No statusText: an upstream's reason phrase can echo the credential, and workerd would write it on the status line.
    response: new Response(passed === undefined ? null : redactedStream(passed.stream, credential.redaction ?? credential.secret), {
      status: response.status,
      headers,
    }),
    auditEventId: decided.id,
    done: done.then(() => undefined),
  };
}

/** The body, read chunk by chunk and given up on as soon as it passes `max` bytes, breaks off or outlives the deadline. */
async function readCapped(source: ReadableStream<Uint8Array>, max: number, deadline: AbortSignal): Promise<Uint8Array | 'too_large' | 'broken'> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const reader = source.getReader();
  const expired = expiry(deadline);
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), expired]);
      if (chunk === 'expired') {
        await reader.cancel('deadline').catch(() => undefined);
        return 'broken';
      }
      if (chunk.done) break;
      bytes += chunk.value.byteLength;
      if (bytes > max) {
        await reader.cancel('too large').catch(() => undefined);
        return 'too_large';
      }
      chunks.push(chunk.value);
    }
  } catch {
    return 'broken';
  }
  const body = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

/** Settles with `expired` once the deadline fires (at once if it has). */
function expiry(deadline: AbortSignal): Promise<'expired'> {
  return new Promise((resolve) => {
    if (deadline.aborted) resolve('expired');
    deadline.addEventListener('abort', () => resolve('expired'), { once: true });
  });
}

/**
 * A redirect the caller may see: one to the upstream's own base, rewritten to the proxy's address
 * (so a client that follows it comes back through keyway); anything else is refused.
 */
function sameUpstreamLocation(location: string, called: string, base: string, proxyBase: string, callerPathOf: (path: string) => string): string | undefined {
  // A relative reference is relative to the URL that was called (RFC 9110 §10.2.2, RFC 8288 §3.2).
  if (!URL.canParse(location, called)) return undefined;
  const target = new URL(location, called);
  const root = new URL(`${base}/`);
  if (target.origin !== root.origin || !target.pathname.startsWith(root.pathname)) return undefined;
  return `${proxyBase}${callerPathOf(`/${target.pathname.slice(root.pathname.length)}`)}${target.search}`;
}

async function recordOutcome(
  deps: ProxyDeps,
  context: RequestContext,
  decided: AuditEventDraft,
  reason: Reason,
  facts: Partial<ProxyRecord>,
  detail: string | undefined,
): Promise<string | undefined> {
  const now = deps.now();
  // The caller is repeated (queries by subject find both records); the policy trace is not: the decision record holds it,
  // so the usage roll-up and the inventory count one grant per request, not two.
  const { policy: _trace, ...caller } = decided;
  const event: AuditEventDraft = {
    ...caller,
    id: nextId(now),
    time: new Date(now).toISOString(),
    decision: REASONS[reason].decision,
    reason,
    ...(detail === undefined ? {} : { detail }),
  };
  setProxy(event, { ...facts, decision_id: decided.id });
  const recorded = await append(deps, event, context, reason === 'proxy_credential_late' ? 'late' : 'outcome');
  report(deps, event, context);
  return recorded ? event.id : undefined;
}

/** One log line per proxied request, at its end: what was asked and how it ended (never a credential). */
function report(deps: ProxyDeps, event: AuditEventDraft, context: RequestContext): void {
  const proxy = event.proxy!;
  const fields = {
    request_id: context.requestId,
    upstream: boundText(proxy.upstream),
    method: boundText(proxy.method),
    path: boundText(proxy.path, AUDIT_BOUNDS.value),
    decision: event.decision,
    reason: event.reason,
    ...(proxy.status === undefined ? {} : { status: proxy.status }),
    ...(proxy.duration_ms === undefined ? {} : { duration_ms: proxy.duration_ms }),
  };
  if (event.decision === 'error') deps.log.warn('proxy request', fields);
  else deps.log.info('proxy request', fields);
}

function setProxy(event: AuditEventDraft, facts: Partial<ProxyRecord>): void {
  event.proxy = { ...event.proxy!, ...facts };
}

/** What a record that cannot be appended leaves undone, as its log line says: by then, an outcome's request was made. */
const UNRECORDED = {
  decision: 'audit append failed; the proxied request is not made',
  outcome: "audit append failed; the proxied request's outcome is not recorded (its decision record is)",
  late: 'audit append failed; the GitHub token minted after the deadline is not recorded, and is revoked at once',
} as const;

async function append(deps: ProxyDeps, event: AuditEventDraft, context: RequestContext, record: keyof typeof UNRECORDED): Promise<boolean> {
  try {
    await deps.audit.append(boundAuditEvent(event));
    return true;
  } catch (error) {
    deps.log.error(UNRECORDED[record], { request_id: context.requestId, error: errorText(error) });
    return false;
  }
}

function requestFacts(context: RequestContext): AuditEventDraft['request'] {
  return {
    id: context.requestId,
    ...(context.clientIp === undefined ? {} : { client_ip: context.clientIp }),
    ...(context.userAgent === undefined ? {} : { user_agent: context.userAgent }),
  };
}

function refusalOf({ failure, limit }: AnsweredRefusal, auditEventId: string | undefined): ProxyAnswer {
  const reason = failure.reason as Refusal;
  const description = failure.detailIsPublic ? boundText(failure.message, AUDIT_BOUNDS.detail) : REASONS[reason].description;
  return {
    kind: 'refused',
    reason,
    description,
    ...(auditEventId === undefined ? {} : { auditEventId }),
    ...(limit === undefined ? {} : { limited: { limit, ...(failure instanceof RateLimitedError ? { retryAfterSeconds: failure.retryAfterSeconds } : {}) } }),
  };
}

function unavailable(): ProxyAnswer {
  return { kind: 'unavailable', description: 'the audit log is unavailable, so the request was not made; retry later' };
}
