import { decodeJwt } from 'jose';
import { monotonicFactory } from 'ulid';
import type { AuditEvent, AuditStore, ChainLink } from '../audit/audit-event.ts';
import { AUDIT_BOUNDS, boundAuditEvent, boundText } from '../audit/bound-audit-event.ts';
import { pooledRandom } from '../audit/pooled-random.ts';
import type { JwksCache } from '../issuers/jwks-cache.ts';
import { verifySubjectToken } from '../issuers/verify-subject-token.ts';
import type { Logger } from '../log.ts';
import { decide } from '../policy/decide.ts';
import type { PolicySet } from '../policy/policy-set.ts';
import { claimSingleUse } from '../replay/claim-single-use.ts';
import type { ReplayGuard } from '../replay/replay-guard.ts';
import type { RequestLimits } from '../limits/request-limits.ts';
import { RateLimitedError } from '../limits/rate-limited-error.ts';
import type { KeyRing } from '../tokens/key-ring.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from '../tokens/jwt-crypto.ts';
import { mintAccessToken } from '../tokens/mint-access-token.ts';
import { parseTokenExchangeRequest, TOKEN_TYPE } from './parse-token-exchange-request.ts';
import { ExchangeError, REASONS, type Decision } from './reasons.ts';
import { githubWebOrigin, parseGitHubAccessRequest } from './github-access-request.ts';
import { GitHubError } from '../github/github-error.ts';
import type { GitHubTokens } from '../github/github-tokens.ts';
import { DEFAULT_GITHUB_API_URL } from '../github/github-settings.ts';
import type { GitHubAccessRequest, IssuedGrant } from '../policy/decide.ts';
import { splitPolicyScope, withCentralGuardrails, type RepositoryPolicySource, type VerifiedCaller } from '../policy-repository/repository-policies.ts';

/** What the exchange needs from the runtime. Every field is a port or a plain value. */
export interface ExchangeDeps {
  /** The broker's own issuer URL. */
  readonly issuer: string;
  readonly policies: () => PolicySet;
  readonly keys: () => KeyRing;
  readonly jwks: JwksCache;
  readonly audit: AuditStore;
  /** Single use of subject tokens, for policies and issuers that demand it. */
  readonly replay: ReplayGuard;
  readonly now: () => number;
  readonly log: Logger;
  readonly clockToleranceSeconds: number;
  /** Rate limits; the per-subject one applies here, once the subject token verified. */
  readonly limits: RequestLimits;
  /** GitHub installation tokens (`grant.github`); undefined when no GitHub App is configured. */
  readonly github?: GitHubTokens;
  /** Repository-owned policies (`.github/keyway/NAME.yaml`, asked for with `scope=policy:NAME`), through the GitHub App. */
  readonly repositoryPolicies?: RepositoryPolicySource;
  /** Verifying, signing and hashing tokens: jose on WebCrypto unless the runtime has faster (Node: node:crypto). */
  readonly crypto?: JwtCrypto;
}

/** Facts about the HTTP request that the audit record keeps. */
export interface RequestContext {
  readonly requestId: string;
  readonly clientIp: string | undefined;
  readonly userAgent: string | undefined;
}

/** The form body, or the reason the HTTP layer refused it before parsing. */
export type ExchangeInput = { readonly form: URLSearchParams } | { readonly refused: ExchangeError };

export interface ExchangeResponse {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
  /** What was decided, for logs and metrics. `audit_unavailable` (no reason code: nothing was recorded) when the append failed. */
  readonly outcome: { readonly decision: Decision; readonly reason: string; readonly limit?: string };
  /** The audit record, once durable; absent when the append failed. */
  readonly recorded?: { readonly event: AuditEvent; readonly link: ChainLink };
  /** How the audit append went; absent when none was tried (a rate-limited request after the first). */
  readonly append?: { readonly outcome: 'ok' | 'error'; readonly seconds: number };
}

const nextId = monotonicFactory(pooledRandom);

type Draft = { -readonly [K in keyof AuditEvent]: AuditEvent[K] };

/**
 * RFC 8693 token exchange: parse → verify → decide → mint → audit → respond. The audit record
 * is appended before anything is returned; if it cannot be, the answer is 503 and no token.
 */
export async function exchangeToken(deps: ExchangeDeps, input: ExchangeInput, context: RequestContext): Promise<ExchangeResponse> {
  const now = deps.now();
  const event: Draft = {
    id: nextId(now),
    time: new Date(now).toISOString(),
    decision: 'error',
    reason: 'internal_error',
    request: {
      id: context.requestId,
      ...(context.clientIp === undefined ? {} : { client_ip: context.clientIp }),
      ...(context.userAgent === undefined ? {} : { user_agent: context.userAgent }),
    },
  };

  let success: Granted | undefined;
  let failure: ExchangeError | undefined;
  try {
    if ('refused' in input) throw input.refused;
    success = await grantOrThrow(deps, input.form, now, event);
  } catch (error) {
    failure = error instanceof ExchangeError ? error : new ExchangeError('internal_error', describe(error), { cause: error });
    if (failure.reason === 'internal_error') {
      deps.log.error('exchange failed unexpectedly', { request_id: context.requestId, error: boundText(describe(error), AUDIT_BOUNDS.detail) });
    }
    event.reason = failure.reason;
    event.decision = REASONS[failure.reason].decision;
    event.detail = failure.message;
  }

  const limited = failure instanceof RateLimitedError ? failure : undefined;
  const headers: Record<string, string> = limited === undefined ? {} : { 'Retry-After': String(limited.retryAfterSeconds) };
  const refusal = (refused: ExchangeError | undefined): Record<string, unknown> => {
    const spec = REASONS[refused?.reason ?? 'internal_error'];
    // A public detail can quote the request back (a scope, a resource): bounded as the record's detail is.
    const description = refused?.detailIsPublic === true ? boundText(refused.message, AUDIT_BOUNDS.detail) : spec.description;
    return { error: 'error' in spec ? spec.error : 'server_error', error_description: description };
  };
  const outcome = { decision: event.decision, reason: event.reason, ...(limited === undefined ? {} : { limit: limited.limit }) };
  // A flood of refusals must not become a flood of records: see RateLimitedError.
  if (limited !== undefined && !limited.recorded) return { status: 429, body: refusal(limited), headers, outcome };

  // Whatever the caller sent, the record (and all that reads it: alerts, logs) holds a bounded amount of it.
  const recordedEvent = boundAuditEvent(event);
  let link: ChainLink;
  const started = performance.now();
  const seconds = (): number => (performance.now() - started) / 1000;
  try {
    link = await deps.audit.append(recordedEvent);
  } catch (error) {
    deps.log.error('audit append failed; refusing to answer with a token', { request_id: context.requestId, error: describe(error) });
    if (success?.revoke !== undefined) {
      // A GitHub token was minted but cannot be accounted for: take it back at once.
      await success.revoke().then(
        () => deps.log.warn('unaudited GitHub token revoked', { request_id: context.requestId }),
        (revokeError: unknown) => deps.log.error('unaudited GitHub token could not be revoked now; its schedule stays', { request_id: context.requestId, error: describe(revokeError) }),
      );
    }
    return {
      status: 503,
      body: { error: 'temporarily_unavailable', error_description: 'the audit log is unavailable, so no token was issued; retry later' },
      outcome: { decision: 'error', reason: 'audit_unavailable' },
      append: { outcome: 'error', seconds: seconds() },
    };
  }

  const recorded = { event: recordedEvent, link };
  const append = { outcome: 'ok', seconds: seconds() } as const;
  if (success !== undefined && failure === undefined) return { status: 200, body: { ...success.body, audit_event_id: event.id }, outcome, recorded, append };
  return {
    recorded,
    append,
    outcome,
    status: REASONS[failure?.reason ?? 'internal_error'].status,
    headers,
    body: { ...refusal(failure), audit_event_id: event.id },
  };
}

/** A granted exchange's answer, and for a GitHub token how to take it back if the exchange cannot be audited. */
interface Granted {
  readonly body: Record<string, unknown>;
  readonly revoke?: () => Promise<void>;
}

async function grantOrThrow(deps: ExchangeDeps, form: URLSearchParams, now: number, event: Draft): Promise<Granted> {
  const request = parseTokenExchangeRequest(form);
  const wantsGitHub = request.requestedTokenType === TOKEN_TYPE.githubInstallationToken;
  // Issue 6 part B: `scope=policy:NAME` asks for a repository's own policy rather than the central set.
  const { policy: repositoryPolicy, rest: permissionScopes } = wantsGitHub ? splitPolicyScope(request.scopes) : { policy: undefined, rest: request.scopes };
  const github = wantsGitHub ? parseGitHubAccessRequest({ ...request, scopes: permissionScopes }, githubWebOrigin(deps.github?.client.apiUrl ?? DEFAULT_GITHUB_API_URL)) : undefined;
  event.request = {
    ...event.request,
    ...(request.audiences.length > 0 ? { audience: request.audiences } : {}),
    ...(request.scopes === undefined ? {} : { scope: request.scopes }),
  };
  const crypto = deps.crypto ?? JOSE_JWT_CRYPTO;
  event.subject_token = await describeSubjectToken(request.subjectToken, crypto);

  // Always verified against the central set's issuers, before anything touches GitHub: a repository's own policy is
  // fetched only for a caller an operator-trusted issuer vouches for, and a stranger's answer cannot depend on the repository.
  const central = deps.policies();
  const verified = await verifySubjectToken(request.subjectToken, {
    issuers: central,
    jwks: deps.jwks,
    now,
    clockToleranceSeconds: deps.clockToleranceSeconds,
    crypto,
  });
  event.issuer = verified.issuer.url;
  event.subject = String(verified.claims.sub);
  event.claims = central.recordedClaims(verified.issuer.url, verified.claims);
  const limited = await deps.limits.forSubject(event.issuer, event.subject);
  if (limited !== undefined) throw limited;
  const caller = { issuer: event.issuer, subject: event.subject };
  const policies =
    repositoryPolicy === undefined || github === undefined ? central : await repositoryPolicySet(deps, central, github, repositoryPolicy, caller);
  if (policies !== central) event.claims = policies.recordedClaims(verified.issuer.url, verified.claims);

  const decision = decide(policies, verified, github === undefined ? request : { ...request, github });
  event.policy = {
    candidates: decision.trace.candidates,
    matched: decision.trace.matched,
    denied_by: decision.trace.deniedBy,
    audit_mode: decision.trace.audit,
  };
  if (!decision.granted) throw new ExchangeError(decision.reason, decision.detail);

  const { grant } = decision;
  if (grant.policy.singleUse) {
    await claimSingleUse(request.subjectToken, verified, { guard: deps.replay, auditEventId: event.id, now, clockToleranceSeconds: deps.clockToleranceSeconds });
  }
  if (grant.github !== undefined) return issueGitHubToken(deps, grant, grant.github, verified.claims, now, event);
  const keys = deps.keys();
  const minted = await mintAccessToken({
    issuer: deps.issuer,
    key: keys.signing,
    grant,
    source: { iss: verified.issuer.url, sub: String(verified.claims.sub) },
    now,
    crypto,
  });
  event.policy = { ...event.policy, granted_by: grant.policy.id };
  event.issued = { jti: minted.jti, sub: grant.subject, aud: grant.audiences, scope: grant.scopes, exp: minted.expiresAt };
  event.decision = 'granted';
  event.reason = 'granted';
  return {
    body: {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.accessToken,
      token_type: 'Bearer',
      expires_in: minted.expiresAt - minted.issuedAt,
      scope: grant.scopes.join(' '),
    },
  };
}

/** Mints the GitHub installation token a grant allows; GitHub failures are refusals with reasons, never a token. */
async function issueGitHubToken(
  deps: ExchangeDeps,
  grant: IssuedGrant,
  github: NonNullable<IssuedGrant['github']>,
  claims: Readonly<Record<string, unknown>>,
  now: number,
  event: Draft,
): Promise<Granted> {
  if (deps.github === undefined) throw new ExchangeError('github_unavailable', 'no GitHub App is configured (KEYWAY_GITHUB_APP_ID, KEYWAY_GITHUB_APP_PRIVATE_KEY)');
  const claim = (name: string): string | undefined => (typeof claims[name] === 'string' || typeof claims[name] === 'number' ? String(claims[name]) : undefined);
  let minted: Awaited<ReturnType<GitHubTokens['mint']>>;
  try {
    minted = await deps.github.mint({
      owner: github.owner,
      repositories: github.repositories,
      permissions: github.permissions,
      auditEventId: event.id,
      ttlSeconds: grant.ttlSeconds,
      repositoryId: claim('repository_id'),
      runId: claim('run_id'),
    });
  } catch (error) {
    if (!(error instanceof GitHubError)) throw error;
    throw new ExchangeError(error.code === 'unavailable' ? 'github_unavailable' : 'github_refused', error.message, { cause: error });
  }
  event.policy = { ...event.policy!, granted_by: grant.policy.id };
  event.github = {
    installation_id: minted.installationId,
    owner: github.owner,
    repositories: minted.repositories,
    permissions: minted.permissions,
    expires_at: new Date(minted.revokeAt).toISOString(),
    github_expires_at: new Date(minted.githubExpiresAt).toISOString(),
    token_sha256: minted.tokenSha256,
  };
  event.decision = 'granted';
  event.reason = 'granted';
  return {
    body: {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.githubInstallationToken,
      token_type: 'Bearer',
      expires_in: Math.max(1, Math.round((minted.revokeAt - now) / 1000)),
      scope: Object.entries(minted.permissions).map(([name, level]) => `${name}:${level}`).join(' '),
    },
    revoke: minted.revokeNow,
  };
}

async function describeSubjectToken(token: string, crypto: JwtCrypto): Promise<NonNullable<AuditEvent['subject_token']>> {
  const sha256 = await crypto.sha256Hex(token);
  let claimed: Record<string, unknown> = {};
  try {
    claimed = decodeJwt(token);
  } catch {
    // A token that does not decode is refused by verification; its hash is still recorded.
  }
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  const jti = text(claimed['jti']);
  const iss = text(claimed['iss']);
  const sub = text(claimed['sub']);
  return {
    sha256,
    ...(jti === undefined ? {} : { jti }),
    ...(iss === undefined ? {} : { claimed_iss: iss }),
    ...(sub === undefined ? {} : { claimed_sub: sub }),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * The set a repository-owned policy is decided by: that policy, fetched from the one repository
 * the request names, with the central deny guardrails. It can only grant GitHub tokens for that
 * repository (checked when it loads), so naming another repository here gets nothing. Asked
 * only once the subject token verified against the central set.
 */
async function repositoryPolicySet(
  deps: ExchangeDeps,
  central: PolicySet,
  github: GitHubAccessRequest,
  name: string,
  caller: VerifiedCaller,
): Promise<PolicySet> {
  if (deps.repositoryPolicies === undefined) throw new ExchangeError('github_unavailable', 'no GitHub App is configured (KEYWAY_GITHUB_APP_ID, KEYWAY_GITHUB_APP_PRIVATE_KEY)');
  const [repository, ...others] = github.repositories ?? [];
  if (repository === undefined || others.length > 0) {
    throw new ExchangeError('github_repository_not_granted', 'a repository\'s own policy needs exactly one resource: the repository that holds it', { public: true });
  }
  return withCentralGuardrails(central, await deps.repositoryPolicies.get(repository, name, caller));
}
