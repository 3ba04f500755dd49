import { githubJobOf } from '../claims/github-run.ts';
import { refuseEndedCiWork, type EndedCiWorkCheck } from '../replay/ended-ci-work.ts';
import { monotonicFactory } from 'ulid';
import type { AppendedRecord, AuditEvent, AuditEventDraft, AuditLog, ChainLink } from '../audit/audit-event.ts';
import { AUDIT_BOUNDS, boundAuditEvent, boundText } from '../audit/bound-audit-event.ts';
import { describePresentedToken, presentedToken } from '../audit/presented-token.ts';
import { recordedRunOf } from '../audit/run-grants.ts';
import { pooledRandom } from '../mint/pooled-random.ts';
import { audienceBucketKeys } from '../limits/audience-bucket-key.ts';
import type { JwksCache } from '../verify/jwks-cache.ts';
import { verifySubjectToken, type VerifiedSubjectToken } from '../verify/verify-subject-token.ts';
import { actorClaim } from './rfc8693-delegation.ts';
import { errorText, type Logger } from '../log.ts';
import { decide, knownToAnAllowPolicy } from '../policy/decide.ts';
import { audienceIncludes } from '../policy/policy.ts';
import type { PolicySet } from '../policy/policy-set.ts';
import { claimSingleUse, type SingleUseContext } from '../replay/claim-single-use.ts';
import type { ReplayGuard } from '../replay/replay-guard.ts';
import type { RequestLimits } from '../limits/request-limits.ts';
import { RateLimitedError } from '../limits/rate-limited-error.ts';
import { refusalToAnswer, type AnsweredRefusal } from '../limits/refusal-record.ts';
import type { KeyRing } from '../mint/key-ring.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from '../mint/jwt-crypto.ts';
import { mintAccessToken } from '../mint/mint-access-token.ts';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from './token-exchange-request.ts';
import { parseTokenRequest } from './rfc7523-grants.ts';
import type { Decision, Refusal } from '../errors/reasons.ts';
import { ExchangeError, type RefusalDiagnostics } from '../errors/exchange-error.ts';
import { refusalDiagnostics } from '../policy/refusal-diagnostics.ts';
import { DEFAULT_GITHUB_DEPLOYMENT, DEFAULT_GITHUB_API_URL, githubWebOrigin, parseGitHubAccessRequest } from './github-access-request.ts';
import type { AccessRequest, DecisionTrace, GitHubAccessRequest, IssuedCloudGrant, IssuedGrant } from '../policy/decide.ts';
import { CLOUD_PROFILES } from '../policy/cloud-profile.ts';
import { mintCloudToken } from '../mint/mint-cloud-token.ts';
import type { GitHubTokenJobs, GitHubTokenMinter, OwnedRepository, RepositoryPolicies } from './ports.ts';
import { splitPolicyScope, withCentralGuardrails } from './repository-policy.ts';
import type { DpopNonces } from '../dpop/dpop-nonce.ts';
import type { VerifiedDpopProof } from '../dpop/dpop-proof.ts';
import {
  decideEachOwner,
  githubTokenRecord,
  issuedOwnerToken,
  mintTokenMap,
  ownerRequests,
  refuseUnmintable,
  type IssuedGitHubTokenMap,
  type OwnerRequest,
} from './github-token-map.ts';
import { bindingFor, claimProof, requireProofOfKey, verifyTokenRequestProof } from './dpop-binding.ts';
import { callerAccount, type VerifiedAs } from '../claims/caller-account.ts';
import { callersGitHubAccount } from '../policy/callers-github-account.ts';

/** What the exchange needs from the runtime. Every field is a port or a plain value. */
export interface ExchangeDeps {
  /** The broker's own issuer URL. */
  readonly issuer: string;
  readonly policies: () => PolicySet;
  readonly keys: () => KeyRing;
  readonly jwks: JwksCache;
  readonly audit: AuditLog;
  /** Single use of subject tokens, for policies and issuers that demand it. */
  readonly replay: ReplayGuard;
  readonly now: () => number;
  readonly log: Logger;
  readonly clockToleranceSeconds: number;
  /** Rate limits; the per-subject one applies here, once the subject token verified. */
  readonly limits: RequestLimits;
  /** GitHub installation tokens (`grant.github`); undefined when no GitHub App is configured. */
  readonly github?: GitHubTokenMinter;
  /** Repository-owned policies (`.github/keyway/NAME.yaml`, asked for with `scope=policy:NAME`), through the GitHub App. */
  readonly repositoryPolicies?: RepositoryPolicies;
  /** Verifying and signing tokens: jose on WebCrypto unless the runtime has faster (Node: node:crypto). */
  readonly crypto?: JwtCrypto;
  /** RFC 9449 server nonces (KEYWAY_DPOP_NONCE_KEY); undefined when DPoP proofs need none. */
  readonly dpopNonces?: DpopNonces;
  /** The GitHub Actions jobs and run attempts whose completion a webhook reported; undefined without GitHub webhooks. */
  readonly endedCiWork?: EndedCiWorkCheck;
}

/** Facts about the HTTP request that the audit record keeps. */
export interface RequestContext {
  readonly requestId: string;
  readonly clientIp: string | undefined;
  readonly userAgent: string | undefined;
}

/** The form body and the `DPoP` header (RFC 9449), or the reason the HTTP layer refused the request before parsing. */
export type ExchangeInput = { readonly form: URLSearchParams; readonly dpopProof?: string } | { readonly refused: ExchangeError };

/** The answer fields of a granted exchange (RFC 8693 §2.2.1), as the caller receives them. */
export interface IssuedToken {
  readonly access_token: string;
  readonly issued_token_type: string;
  /** `DPoP` when the token is bound to the key of the request's DPoP proof (`cnf.jkt`); `N_A` for a cloud token (RFC 8693: not an access token). */
  readonly token_type: 'Bearer' | 'DPoP' | 'N_A';
  readonly expires_in: number;
  readonly scope: string;
}

/**
 * What the exchange answers, transport-free: a token, a refusal with its reason code (and for a
 * rate limit, when to retry), or unavailable (no audit record, so no token). The HTTP layer maps
 * it to a status and an RFC 6749 body in one place (http/oauth-errors.ts).
 */
export type ExchangeAnswer =
  | { readonly kind: 'granted'; readonly token: IssuedToken | IssuedGitHubTokenMap }
  | {
      readonly kind: 'refused';
      readonly reason: Refusal;
      readonly description: string;
      readonly retryAfterSeconds?: number;
      /** What the operator lets the caller learn of a policy refusal (`diagnostics: claim-names`); absent by default. */
      readonly diagnostics?: RefusalDiagnostics;
    }
  | { readonly kind: 'unavailable'; readonly description: string };

export interface ExchangeResult {
  readonly answer: ExchangeAnswer;
  /** What was decided, for logs and metrics. `audit_unavailable` (no reason code: nothing was recorded) when the append failed. */
  readonly outcome: { readonly decision: Decision; readonly reason: string; readonly limit?: string };
  /** The audit record, once durable; absent when the append failed or was not tried. Its id is the answer's `audit_event_id`. */
  readonly recorded?: AppendedRecord;
  /** How the audit append went; absent when none was tried (a rate-limited request after the first). */
  readonly append?: { readonly outcome: 'ok' | 'error'; readonly seconds: number };
}

const nextId = monotonicFactory(pooledRandom);

/**
 * RFC 8693 token exchange: parse → verify → decide → mint → audit → answer. The audit record
 * is appended before anything is returned; if it cannot be, the answer is unavailable and no token.
 */
export async function exchangeToken(deps: ExchangeDeps, input: ExchangeInput, context: RequestContext): Promise<ExchangeResult> {
  const now = deps.now();
  const event: AuditEventDraft = {
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

  let settled: { readonly granted: Granted } | AnsweredRefusal;
  const verifiedAs: VerifiedAs = {};
  try {
    if ('refused' in input) throw input.refused;
    settled = { granted: await grantOrThrow(deps, input, now, event, verifiedAs) };
  } catch (error) {
    const failure = error instanceof ExchangeError ? error : new ExchangeError('internal_error', errorText(error), { cause: error });
    if (failure.reason === 'internal_error') {
      deps.log.error('exchange failed unexpectedly', { request_id: context.requestId, error: boundText(errorText(error), AUDIT_BOUNDS.detail) });
    }
    settled = await refusalToAnswer(deps, event, failure, verifiedAs);
  }

  const limit = 'failure' in settled ? settled.limit : undefined;
  const answer: ExchangeAnswer = 'granted' in settled ? { kind: 'granted', token: settled.granted.token } : refusal(settled.failure);
  const outcome = { decision: event.decision, reason: event.reason, ...(limit === undefined ? {} : { limit }) };
  // A flood of refusals must not become a flood of records: see RateLimitedError and spendTenantRefusalBudget.
  if ('failure' in settled && !settled.recorded) return { answer, outcome };

  // Whatever the caller sent, the record (and all that reads it: alerts, logs) holds a bounded amount of it.
  const recordedEvent = boundAuditEvent(event);
  let link: ChainLink;
  const started = performance.now();
  const seconds = (): number => (performance.now() - started) / 1000;
  try {
    link = await deps.audit.append(recordedEvent);
  } catch (error) {
    deps.log.error('audit append failed; refusing to answer with a token', { request_id: context.requestId, error: errorText(error) });
    const revoke = 'granted' in settled ? settled.granted.revoke : undefined;
    if (revoke !== undefined) {
      // A GitHub token was minted but cannot be accounted for: take it back at once.
      await revoke().then(
        () => deps.log.warn('unaudited GitHub token revoked', { request_id: context.requestId }),
        (revokeError: unknown) =>
          deps.log.error('unaudited GitHub token could not be revoked now; its schedule stays', {
            request_id: context.requestId,
            error: errorText(revokeError),
          }),
      );
    }
    return {
      answer: { kind: 'unavailable', description: 'the audit log is unavailable, so no token was issued; retry later' },
      outcome: { decision: 'error', reason: 'audit_unavailable' },
      append: { outcome: 'error', seconds: seconds() },
    };
  }
  return { answer, outcome, recorded: { event: recordedEvent, link }, append: { outcome: 'ok', seconds: seconds() } };
}

/** What the caller is told of a refusal: the reason's public description, or the refusal's own detail when it is public. */
function refusal(failure: ExchangeError): ExchangeAnswer {
  // A public detail can quote the request back (a scope, a resource): bounded as the record's detail is.
  const description = boundText(failure.publicDescription, AUDIT_BOUNDS.detail);
  const retryAfterSeconds = failure instanceof RateLimitedError ? failure.retryAfterSeconds : undefined;
  return {
    kind: 'refused',
    reason: failure.reason,
    description,
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
    ...(failure.diagnostics === undefined ? {} : { diagnostics: failure.diagnostics }),
  };
}

/** A granted exchange's token (or map of them), and for GitHub tokens how to take them back if the exchange cannot be audited. */
interface Granted {
  readonly token: IssuedToken | IssuedGitHubTokenMap;
  readonly revoke?: () => Promise<void>;
}

async function grantOrThrow(
  deps: ExchangeDeps,
  input: Extract<ExchangeInput, { form: URLSearchParams }>,
  now: number,
  event: AuditEventDraft,
  verifiedAs: VerifiedAs,
): Promise<Granted> {
  const request = parseTokenRequest(input.form);
  const wantsMap = request.requestedTokenType === TOKEN_TYPE.githubInstallationTokenMap;
  const wantsGitHub = wantsMap || request.requestedTokenType === TOKEN_TYPE.githubInstallationToken;
  // Issue 6 part B: `scope=policy:NAME` asks for a repository's own policy rather than the central set.
  const { policy: repositoryPolicy, rest: permissionScopes } = wantsGitHub ? splitPolicyScope(request.scopes) : { policy: undefined, rest: request.scopes };
  const githubApi = deps.github?.apiUrl ?? DEFAULT_GITHUB_API_URL;
  const github = wantsGitHub
    ? {
        ...parseGitHubAccessRequest({ ...request, scopes: permissionScopes }, githubWebOrigin(githubApi)),
        deployment: deps.github?.deployment ?? DEFAULT_GITHUB_DEPLOYMENT,
      }
    : undefined;
  // Issue 19: a repository's own policy grants a token for that repository only; a map is for the central set's owners.
  if (wantsMap && repositoryPolicy !== undefined) {
    throw new ExchangeError('github_repository_not_granted', `a repository's own policy grants one token: ask for ${TOKEN_TYPE.githubInstallationToken}`, {
      public: true,
    });
  }
  const owners = wantsMap && github !== undefined ? ownerRequests(github) : undefined;
  event.request = {
    ...event.request,
    ...(request.grantType === TOKEN_EXCHANGE_GRANT ? {} : { grant_type: request.grantType }),
    ...(request.audiences.length > 0 ? { audience: request.audiences } : {}),
    ...(request.scopes === undefined ? {} : { scope: request.scopes }),
  };
  const crypto = deps.crypto ?? JOSE_JWT_CRYPTO;
  const { described, decoded } = describePresentedToken(request.subjectToken, crypto.sha256Hex);
  event.subject_token = described;
  const proof = await verifyTokenRequestProof(input.dpopProof, { tokenEndpoint: `${deps.issuer}/token`, now, nonces: deps.dpopNonces });

  // Always verified against the central set's issuers, before anything touches GitHub: a repository's own policy is
  // fetched only for a caller an operator-trusted issuer vouches for, and a stranger's answer cannot depend on the repository.
  const central = deps.policies();
  // Its audience is judged where the policies decide, so that a token minted for one no policy accepts spends what any
  // other stranger's does (its account's budgets, its subject's limit) and is answered alike.
  const { token: verified, audienceRefused } = await verifySubjectToken(request.subjectToken, {
    issuers: central,
    jwks: deps.jwks,
    now,
    clockToleranceSeconds: deps.clockToleranceSeconds,
    crypto,
    ...(decoded === undefined ? {} : { decoded }),
  });
  event.issuer = verified.issuer.url;
  const caller = callerAccount(verified.issuer.url, verified.issuer.preset.tenantClaims, verified.claims);
  verifiedAs.caller = caller;
  verifiedAs.knownToPolicies = () => knownToAnAllowPolicy(central, verified.issuer.url, verified.claims);
  event.issuer_kind = verified.issuer.preset.name;
  event.subject = String(verified.claims.sub);
  event.claims = central.recordedClaims(verified.issuer.url, verified.claims);
  // Keyed on its audience too: a token for one no policy accepts spends what one for an accepted audience would, never the
  // bucket of the same job's tokens for the broker.
  const limited = await deps.limits.forSubject(caller, event.subject, audienceBucketKeys(verified.claims.aud, crypto.sha256Hex));
  if (limited !== undefined) throw limited;
  await refuseEndedCiWork(deps.endedCiWork, verified, now);
  const actorToken = request.actorToken === undefined ? undefined : await verifyActor(request.actorToken, central, now, crypto, deps, event);
  const actor = actorToken?.token;
  if (actor !== undefined) {
    requireProofOfKey('actor', actor.claims, proof);
    await refuseEndedCiWork(deps.endedCiWork, actor, now, 'actor');
  }
  const actorUse = actor === undefined || request.actorToken === undefined ? undefined : { token: request.actorToken, verified: actor };
  const act = actor === undefined ? undefined : actorClaim(verified.claims, { iss: actor.issuer.url, sub: String(actor.claims.sub) });
  const wantsCloud = request.requestedTokenType === TOKEN_TYPE.idToken;
  const accessRequest = {
    ...request,
    ...(github !== undefined ? { github } : wantsCloud ? { cloud: true as const } : {}),
    ...(actor === undefined ? {} : { actor: { claims: actor.claims, via: 'actor_token' as const } }),
  };
  // A repository's own policy is asked for only as a token of an accepted audience would be: its refusals before the fetch
  // come first, so that none of them tells a stranger whether the audience is accepted.
  const own = repositoryPolicy === undefined || github === undefined ? undefined : ownPolicyRepository(deps, github, repositoryPolicy, verified);
  const refusedFor = audienceRefused ?? actorToken?.audienceRefused ?? (own === undefined ? undefined : repositoryAudienceRefusal(verified, deps.issuer));
  // Before a repository's own policy is fetched: no policy, the repository's included, takes a token for this audience.
  if (refusedFor !== undefined) {
    throw new ExchangeError(refusedFor.reason, refusedFor.message, { diagnostics: refusalDiagnostics(central, verified, accessRequest) });
  }
  const policies =
    own === undefined ? central : withCentralGuardrails(central, await own.policies.get(own.repository, own.name, { ...caller, subject: event.subject }));
  if (policies !== central) event.claims = policies.recordedClaims(verified.issuer.url, verified.claims);
  if (owners !== undefined)
    return issueGitHubTokenMap(deps, { policies, verified, accessRequest, owners, proof, subjectToken: request.subjectToken, actor: actorUse }, now, event);
  const decision = decide(policies, verified, accessRequest);
  event.policy = policyRecord(decision.trace, policies);
  if (!decision.granted) {
    throw new ExchangeError(decision.reason, decision.detail, { diagnostics: refusalDiagnostics(policies, verified, accessRequest) });
  }

  const { grant } = decision;
  const binding = bindingFor(proof, verified.claims, {
    requireDpop: grant.policy.grant?.requireDpop === true,
    token: grant.github !== undefined ? 'github' : grant.cloud !== undefined ? 'cloud' : 'access',
  });
  // Before the claims: a token used up for an answer that could never have been a token leaves the job nothing to retry with.
  const app = grant.github === undefined ? undefined : { github: grant.github, minter: githubApp(deps) };
  app?.minter.checkMintable(app.github);
  // Cheapest to replace first: a refused claim leaves those made before it used (see claimSingleUseActor).
  if (proof !== undefined) await claimProof(proof, deps.replay, { auditEventId: event.id, now });
  await claimSingleUseActor(deps, actorUse, event, now);
  if (grant.policy.singleUse) await claimSingleUse(request.subjectToken, verified, singleUseContext(deps, event, now));
  if (app !== undefined) return issueGitHubToken(app.minter, grant, app.github, { verified, actor }, now, event);
  if (grant.cloud !== undefined) return issueCloudToken(deps, grant, grant.cloud, now, event, crypto);
  const keys = deps.keys();
  const minted = await mintAccessToken({
    issuer: deps.issuer,
    key: keys.signing,
    grant,
    source: { iss: verified.issuer.url, sub: String(verified.claims.sub) },
    now,
    crypto,
    ...(binding === undefined ? {} : { confirmation: binding }),
    ...(act === undefined ? {} : { actor: act }),
  });
  event.policy = { ...event.policy, granted_by: grant.policy.id };
  event.issued = {
    jti: minted.jti,
    sub: grant.subject,
    aud: grant.audiences,
    scope: grant.scopes,
    exp: minted.expiresAt,
    ...(binding === undefined ? {} : { cnf_jkt: binding.jkt }),
  };
  event.decision = 'granted';
  event.reason = 'granted';
  return {
    token: {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.accessToken,
      token_type: binding === undefined ? 'Bearer' : 'DPoP',
      expires_in: minted.expiresAt - minted.issuedAt,
      scope: grant.scopes.join(' '),
    },
  };
}

/** Mints the token a cloud's web-identity federation takes, signed with a key of the algorithm that cloud accepts. */
async function issueCloudToken(
  deps: ExchangeDeps,
  grant: IssuedGrant,
  cloud: IssuedCloudGrant,
  now: number,
  event: AuditEventDraft,
  crypto: JwtCrypto,
): Promise<Granted> {
  const minted = await mintCloudToken({
    issuer: deps.issuer,
    key: deps.keys().signingFor(CLOUD_PROFILES[cloud.provider].alg),
    subject: grant.subject,
    ttlSeconds: grant.ttlSeconds,
    claims: grant.claims,
    cloud,
    now,
    crypto,
  });
  event.policy = { ...event.policy!, granted_by: grant.policy.id };
  event.issued = { jti: minted.jti, sub: grant.subject, aud: [cloud.audience], scope: [], exp: minted.expiresAt };
  event.cloud = {
    provider: cloud.provider,
    ...(cloud.identity === undefined ? {} : { identity: cloud.identity }),
    ...(Object.keys(cloud.sessionTags).length === 0 ? {} : { session_tags: cloud.sessionTags }),
    ...(cloud.transitiveTagKeys.length === 0 ? {} : { transitive_tag_keys: cloud.transitiveTagKeys }),
    jti: minted.jti,
  };
  event.decision = 'granted';
  event.reason = 'granted';
  return {
    token: {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.idToken,
      // RFC 8693 §2.2.1: the token is not an OAuth access token, so it has no token type to use it with.
      token_type: 'N_A',
      expires_in: minted.expiresAt - minted.issuedAt,
      scope: '',
    },
  };
}

/** Mints the GitHub installation token a grant allows; GitHub failures are refusals with reasons, never a token. */
async function issueGitHubToken(
  minter: GitHubTokenMinter,
  grant: IssuedGrant,
  github: NonNullable<IssuedGrant['github']>,
  tokens: { readonly verified: VerifiedSubjectToken; readonly actor: VerifiedSubjectToken | undefined },
  now: number,
  event: AuditEventDraft,
): Promise<Granted> {
  const minted = await minter.mint({
    owner: github.owner,
    repositories: github.repositories,
    permissions: github.permissions,
    organizationPermissions: github.organizationPermissions,
    ownerId: github.ownerId,
    revocationId: event.id,
    revokeAt: now + grant.ttlSeconds * 1000,
    ...githubJobsOf(minter, tokens.verified, tokens.actor),
  });
  event.policy = { ...event.policy!, granted_by: grant.policy.id };
  event.github = githubTokenRecord(minted);
  event.decision = 'granted';
  event.reason = 'granted';
  const { access_token, token_type, expires_in, scope } = issuedOwnerToken(minted, now);
  return {
    token: { access_token, issued_token_type: TOKEN_TYPE.githubInstallationToken, token_type, expires_in, scope },
    revoke: minted.revokeNow,
  };
}

/**
 * A multi-owner request (issue 19): each owner decided on its own, then one token minted per owner, all or nothing, under
 * this one audit record (one record per answer: if it cannot be appended, every token of the map is revoked).
 */
async function issueGitHubTokenMap(
  deps: ExchangeDeps,
  asked: {
    readonly policies: PolicySet;
    readonly verified: VerifiedSubjectToken;
    readonly accessRequest: AccessRequest;
    readonly owners: readonly OwnerRequest[];
    readonly proof: VerifiedDpopProof | undefined;
    readonly subjectToken: string;
    readonly actor: ActorUse | undefined;
  },
  now: number,
  event: AuditEventDraft,
): Promise<Granted> {
  const { policies, verified } = asked;
  const decided = decideEachOwner(policies, verified, asked.accessRequest, asked.owners);
  event.policy = policyRecord(decided.trace, policies);
  if (!decided.granted) throw decided.refusal;
  // GitHub tokens cannot be bound to a key: a bound subject token or a DPoP proof is refused here, as for one token.
  bindingFor(asked.proof, verified.claims, { requireDpop: false, token: 'github' });
  // Before the claims, as for one token.
  const minter = githubApp(deps);
  refuseUnmintable(minter, decided.grants);
  await claimSingleUseActor(deps, asked.actor, event, now);
  if (decided.grants.some(({ grant }) => grant.policy.singleUse)) await claimSingleUse(asked.subjectToken, verified, singleUseContext(deps, event, now));
  const minted = await mintTokenMap(minter, decided.grants, {
    auditEventId: event.id,
    jobs: githubJobsOf(minter, verified, asked.actor?.verified),
    now,
    log: deps.log,
  });
  event.policy = { ...event.policy, granted_by: decided.grants[0]!.grant.policy.id };
  event.github_tokens = minted.records;
  event.decision = 'granted';
  event.reason = 'granted';
  return { token: minted.answer, revoke: minted.revoke };
}

/**
 * The GitHub Actions jobs whose end revokes a GitHub token of this exchange: the subject token's, and a delegated
 * exchange's actor token's (an orchestrator's job holds the token as much as the subject's does). Of a GitHub issuer of
 * the App's own deployment only: its webhooks are the ones that say a job ended.
 */
function githubJobsOf(github: GitHubTokenMinter, verified: VerifiedSubjectToken, actor: VerifiedSubjectToken | undefined): GitHubTokenJobs {
  const { deployment } = github;
  return { ...githubJobOf(verified, deployment), actorJob: actor === undefined ? undefined : githubJobOf(actor, deployment) };
}

/** A delegated request's actor token, as sent and as verified. */
interface ActorUse {
  readonly token: string;
  readonly verified: VerifiedSubjectToken;
}

const singleUseContext = (deps: ExchangeDeps, event: AuditEventDraft, now: number): SingleUseContext => ({
  guard: deps.replay,
  auditEventId: event.id,
  now,
  clockToleranceSeconds: deps.clockToleranceSeconds,
});

/**
 * Uses up an actor token whose issuer's tokens are single use (azure-devops: Entra ID takes them too), whatever policy grants:
 * presented a second time, as the subject or the actor, it is refused as replayed. A policy's own `single_use` holds its
 * subject only: an orchestrator may act for many subjects with one token of an issuer whose tokens are not. Claimed before
 * the subject token: such an issuer hands out a new token at every request, where a job may hold one subject token only
 * (GitLab's `id_tokens`), which an actor refused as replayed would otherwise have used up.
 */
async function claimSingleUseActor(deps: ExchangeDeps, actor: ActorUse | undefined, event: AuditEventDraft, now: number): Promise<void> {
  if (actor?.verified.issuer.preset.singleUse === true) await claimSingleUse(actor.token, actor.verified, singleUseContext(deps, event, now));
}

/**
 * The actor token of a delegated request, verified as a subject token is, its audience judged apart as the subject token's
 * is (the refusal it earns is thrown where the subject's would be: after the actor's job is checked, so that an ended job's
 * answer does not tell which audiences are accepted); its refusals name it.
 */
async function verifyActor(
  token: string,
  issuers: PolicySet,
  now: number,
  crypto: JwtCrypto,
  deps: ExchangeDeps,
  event: AuditEventDraft,
): Promise<{ readonly token: VerifiedSubjectToken; readonly audienceRefused: ExchangeError | undefined }> {
  event.actor = presentedToken(token, crypto.sha256Hex).digest;
  const named = (error: ExchangeError) => new ExchangeError(error.reason, `actor_token: ${error.message}`, { public: error.detailIsPublic, cause: error });
  let verified: VerifiedSubjectToken;
  let audienceRefused: ExchangeError | undefined;
  try {
    ({ token: verified, audienceRefused } = await verifySubjectToken(token, {
      issuers,
      jwks: deps.jwks,
      now,
      clockToleranceSeconds: deps.clockToleranceSeconds,
      crypto,
    }));
  } catch (error) {
    if (!(error instanceof ExchangeError)) throw error;
    throw named(error);
  }
  const run = recordedRunOf(verified.claims);
  event.actor = {
    ...event.actor,
    issuer: verified.issuer.url,
    issuer_kind: verified.issuer.preset.name,
    subject: String(verified.claims.sub),
    ...(run === undefined ? {} : { run }),
  };
  return { token: verified, audienceRefused: audienceRefused === undefined ? undefined : named(audienceRefused) };
}

/** What the record keeps of how the policies decided. */
function policyRecord(trace: DecisionTrace, policies: PolicySet): NonNullable<AuditEvent['policy']> {
  return {
    candidates: trace.candidates,
    matched: trace.matched,
    denied_by: trace.deniedBy,
    audit_mode: trace.audit,
    ...(policies.version === undefined ? {} : { set_version: policies.version }),
  };
}

function noGitHubApp(): ExchangeError {
  return new ExchangeError('github_unavailable', 'no GitHub App is configured (KEYWAY_GITHUB_APP_ID, KEYWAY_GITHUB_APP_PRIVATE_KEY)');
}

/** The GitHub App that mints a granted GitHub token; refused when none is configured. */
function githubApp(deps: ExchangeDeps): GitHubTokenMinter {
  if (deps.github === undefined) throw noGitHubApp();
  return deps.github;
}

/**
 * The repository whose own policy `name` a request asks for, and what reads it: the one repository the request names, once it
 * is of the caller's own account and a GitHub App is configured; refused otherwise, before anything is fetched. Its
 * policy, with the central deny guardrails, decides: it can only grant GitHub tokens for that repository (checked when
 * it loads), so naming another repository gets nothing. Asked only once the subject token verified against the central set.
 */
function ownPolicyRepository(
  deps: ExchangeDeps,
  github: GitHubAccessRequest,
  name: string,
  verified: VerifiedSubjectToken,
): { readonly repository: OwnedRepository; readonly name: string; readonly policies: RepositoryPolicies } {
  const [repository, ...others] = github.repositories ?? [];
  if (repository === undefined || others.length > 0) {
    throw new ExchangeError('github_repository_not_granted', "a repository's own policy needs exactly one resource: the repository that holds it", {
      public: true,
    });
  }
  // Its policies grant only GitHub Actions jobs of its owner's account: anyone else's request costs no fetch, and is
  // answered as a missing policy is.
  const ownerId = callersGitHubAccount(verified, repository.owner, github.deployment);
  if (ownerId === undefined) {
    throw new ExchangeError(
      'no_policy_matched',
      `${repository.owner}/${repository.name}'s own policies grant only GitHub Actions jobs of ${repository.owner}'s account, which this caller is not: nothing was fetched`,
    );
  }
  // Only once the caller is the repository's own: anyone else's answer says nothing of whether a GitHub App is configured.
  if (deps.repositoryPolicies === undefined) throw noGitHubApp();
  // Read only from the caller's own account, by its id: under a login renamed and taken again, another account's policy is never its.
  return { repository: { ...repository, ownerId: Number(ownerId) }, name, policies: deps.repositoryPolicies };
}

/**
 * audience_mismatch for a token not minted for the broker: a repository's own policy cannot set subject_audience, so it
 * takes no other, and the fetch (its quota, its limits, its answers) must not tell whether the central set accepts it.
 */
function repositoryAudienceRefusal(verified: VerifiedSubjectToken, brokerIssuer: string): ExchangeError | undefined {
  if (audienceIncludes(verified.claims.aud, brokerIssuer)) return undefined;
  return new ExchangeError('audience_mismatch', `a repository's own policy takes only a token for ${brokerIssuer}, the broker`);
}
