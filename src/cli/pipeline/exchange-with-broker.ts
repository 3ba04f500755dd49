import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import * as v from 'valibot';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../../core/exchange/token-exchange-request.ts';
import { isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { FetchError } from '../../core/outbound/read-bounded.ts';
import { sha256Hex } from '../../core/mint/sha256-hex.ts';
import type { CiTokenSource, Environment } from './ci-token-sources.ts';
import { describeNetworkError, RedirectRefusedError, type EarlierTry, type RetryingFetch } from './retrying-fetch.ts';
import { GITHUB_INSTALLATION_TOKEN_TYPE, REVOCATIONS, revokeKeywayToken } from './revoke-token.ts';
import { asciiLowerCase } from '../../core/claims/case-fold.ts';
import { KeywayError } from '../../core/errors/keyway-error.ts';
import { REASONS } from '../../core/errors/reasons.ts';
import type { DpopKeyPair } from '../../core/dpop/dpop-fetch.ts';

export interface BrokerExchangeRequest {
  /** The broker's issuer URL; its RFC 8414 metadata says where the token endpoint is. */
  readonly url: URL;
  readonly source: CiTokenSource;
  /** Audience the CI token is requested with. Default: the broker's issuer, as policies expect. */
  readonly subjectAudience?: string | undefined;
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  /** Default: a keyway access token. `TOKEN_TYPE.githubInstallationToken` asks for a GitHub App installation token (audiences are then OWNER/REPO, scopes permission:level). */
  readonly requestedTokenType?: string | undefined;
  /** Used for discovery and the exchange; the exchange is made anew for each try (a fresh DPoP proof, a fresh CI token where the source gives one). */
  readonly fetch: RetryingFetch;
  /** Progress lines for the job log; never given a token. */
  readonly log: (line: string) => void;
  /** A key to bind the token to (RFC 9449): the exchange carries a DPoP proof, and only a DPoP-bound token is accepted back. */
  readonly dpop?: DpopKeyPair | undefined;
  /**
   * Masks a token in the job log before anything could print it (GitHub Actions' `::add-mask::`): the CI token as soon as it
   * is read (a refusal, or an error page in front of the broker, may quote it), and a token refused as it arrives too.
   */
  readonly mask: (token: string) => void;
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly issuedTokenType: string | undefined;
  /** `bearer` or `dpop` (RFC 6749 token_type, lower-cased). */
  readonly tokenType: string;
  readonly expiresAt: Date;
  readonly scope: string | undefined;
  readonly auditEventId: string | undefined;
  /** SHA-256 of the access token: what the job log shows in its place. */
  readonly sha256: string;
}

/** The broker answered with an RFC 6749 error (4xx): a decision, not worth retrying. Exit code 4. */
export class BrokerRefusedError extends KeywayError {
  override readonly name = 'BrokerRefusedError';
  readonly code = 'broker_refused';
  readonly status: number;
  readonly error: string;
  readonly description: string | undefined;
  readonly auditEventId: string | undefined;
  /** The claims of the CI token that was sent, decoded here without verification: the job's own, for its log. */
  readonly sentClaims: Readonly<Record<string, unknown>> | undefined;
  /** What the operator lets the pipeline learn (`diagnostics: claim-names`); undefined when the broker said nothing more. */
  readonly diagnostics: { readonly failedClaims: readonly string[]; readonly deniedBy: readonly string[] } | undefined;

  constructor(status: number, body: Readonly<Record<string, unknown>>, sentToken?: string) {
    const error = typeof body['error'] === 'string' ? body['error'] : 'invalid_response';
    const description = typeof body['error_description'] === 'string' ? body['error_description'] : undefined;
    super(description === undefined ? error : `${error}: ${description}`);
    this.status = status;
    this.error = error;
    this.description = description;
    this.auditEventId = typeof body['audit_event_id'] === 'string' ? body['audit_event_id'] : undefined;
    this.sentClaims = sentToken === undefined ? undefined : decodedClaims(sentToken);
    this.diagnostics = readDiagnostics(body['diagnostics']);
  }
}

function decodedClaims(token: string): Record<string, unknown> | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

const names = (value: unknown): string[] | undefined =>
  Array.isArray(value) && value.every((item) => typeof item === 'string') ? (value as string[]) : undefined;

function readDiagnostics(value: unknown): BrokerRefusedError['diagnostics'] {
  if (typeof value !== 'object' || value === null) return undefined;
  const failedClaims = names((value as Record<string, unknown>)['failed_claims']);
  const deniedBy = names((value as Record<string, unknown>)['denied_by']);
  return failedClaims === undefined || deniedBy === undefined ? undefined : { failedClaims, deniedBy };
}

/** The broker could not be reached or did not answer usefully, even after retries. Exit code 5. */
export class BrokerUnavailableError extends KeywayError {
  override readonly name = 'BrokerUnavailableError';
  readonly code = 'broker_unavailable';
  readonly auditEventId: string | undefined;

  constructor(message: string, options: { cause?: unknown; auditEventId?: string | undefined } = {}) {
    super(message, { cause: options.cause });
    this.auditEventId = options.auditEventId;
  }
}

/** Sent as `client_id` (openid-client's `None` client authentication); keyway needs no client registration. */
const CLIENT_ID = 'keyway-cli';

/**
 * The pipeline side of RFC 8693: discover the broker (RFC 8414), get the job's own OIDC token
 * for the broker's audience, exchange it. http is allowed only for a loopback broker.
 */
export async function exchangeWithBroker(request: BrokerExchangeRequest): Promise<IssuedToken> {
  const { config, tokenEndpoint, subjectToken, parameters } = await prepareExchange(request);
  // One handle for every try, so that a nonce the broker handed out is kept; the proofs are not.
  const options = request.dpop === undefined ? undefined : { DPoP: client.getDPoPHandle(config, request.dpop) };
  const response = await request.fetch.renewing(async (once, earlier) => {
    const sent = await subjectToken();
    config[client.customFetch] = once;
    try {
      // openid-client signs a fresh proof for each request, and asks once more with the nonce of a `use_dpop_nonce` answer.
      return await client.genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, withSubjectToken(parameters, sent), options);
    } catch (error) {
      throw await classify(error, tokenEndpoint, sent, earlier);
    }
  });
  const body = response as unknown as Readonly<Record<string, unknown>>;
  const auditEventId = typeof body['audit_event_id'] === 'string' ? body['audit_event_id'] : undefined;
  if (request.dpop !== undefined && response.token_type !== 'dpop') {
    throw await refuseUnbound(request, request.dpop, response.access_token, response.token_type, auditEventId);
  }
  // Checked before anything uses the token: it is printed alone on standard output (TOKEN=$(keyway exchange …), or the job
  // log when not captured) and set as a step output a workflow may write into a `run:` script, so a line break or a quote
  // in it would start a workflow command or shell code of the broker's choosing. The value is not named: it may be live.
  if (!B64TOKEN.test(response.access_token)) {
    throw new BrokerUnavailableError(`${tokenEndpoint} answered an access_token that is not an RFC 6750 token (b64token characters): not used`, {
      auditEventId,
    });
  }
  return {
    accessToken: response.access_token,
    issuedTokenType: typeof body['issued_token_type'] === 'string' ? body['issued_token_type'] : undefined,
    tokenType: response.token_type,
    expiresAt: expiryOf(response.expires_in ?? 0, tokenEndpoint, auditEventId),
    scope: response.scope,
    auditEventId,
    sha256: sha256Hex(response.access_token),
  };
}

/**
 * A token answered to a DPoP request without the binding: whoever answered holds it, live, and the job never uses it. It
 * is masked before anything could print it, and revoked at the broker, best effort, with a proof of the job's key (which
 * the broker needs should the token be bound after all, and ignores otherwise); the error says what was done.
 */
async function refuseUnbound(
  request: BrokerExchangeRequest,
  key: DpopKeyPair,
  token: string,
  tokenType: string,
  auditEventId: string | undefined,
): Promise<BrokerUnavailableError> {
  request.mask(token);
  const revoked = await revokeKeywayToken(token, { broker: request.url, fetch: request.fetch, dpop: key }).then(
    () => 'it was revoked at the broker',
    (error: unknown) => `it could not be revoked at the broker (${describeNetworkError(error)}): it stays live until it expires`,
  );
  // The type as the answer named it, if it is a plausible one: the answer is not the broker's to be trusted.
  const named = /^[A-Za-z0-9_-]{1,32}$/.test(tokenType) ? `a ${tokenType}` : 'an unbound';
  return new BrokerUnavailableError(
    `the broker answered ${named} token to a DPoP request: it did not bind the token to the job's key; the token is not used nor printed ` +
      `(masked in GitHub Actions), and ${revoked}`,
    { auditEventId },
  );
}

/** One owner's GitHub installation token of a token map (issue 19). */
export interface IssuedOwnerToken {
  /** The owner's login in lower case, as the broker keys it. */
  readonly owner: string;
  readonly accessToken: string;
  readonly expiresAt: Date;
  readonly scope: string | undefined;
  readonly repositories: readonly string[];
  readonly sha256: string;
}

export interface IssuedTokenMap {
  readonly tokens: readonly IssuedOwnerToken[];
  readonly auditEventId: string | undefined;
}

/** RFC 6750's b64token: what every token keyway issues is (a JWT, a GitHub token); no quote, space, line break or shell syntax. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** When a token given `expiresIn` seconds expires; undefined for an answer so far off that no date holds it. */
function expiryDate(expiresIn: number): Date | undefined {
  const expiresAt = new Date(Date.now() + expiresIn * 1000);
  return Number.isNaN(expiresAt.getTime()) ? undefined : expiresAt;
}

/** expiryDate, for a token answer: one with no date is not a token answer. */
function expiryOf(expiresIn: number, tokenEndpoint: string, auditEventId: string | undefined): Date {
  const expiresAt = expiryDate(expiresIn);
  if (expiresAt === undefined)
    throw new BrokerUnavailableError(`${tokenEndpoint} answered an expires_in of ${expiresIn} s: not a token's lifetime`, { auditEventId });
  return expiresAt;
}

/** An owner's login as the broker keys the map: GitHub's login characters, in lower case (env var and output names are built from it). */
const OWNER_KEY = /^[a-z0-9][a-z0-9-]{0,38}$/;

const OwnerTokenAnswer = v.object({
  // No quote, no space, no shell syntax, so it can go into an export line as it is.
  access_token: v.pipe(v.string(), v.regex(B64TOKEN)),
  expires_in: v.pipe(v.number(), v.integer(), v.minValue(1)),
  scope: v.optional(v.string()),
  repositories: v.optional(v.array(v.string()), []),
});
const TokenMapAnswer = v.object({
  issued_token_type: v.literal(TOKEN_TYPE.githubInstallationTokenMap),
  // Read as a Map of the object's own entries: valibot's record skips the keys `constructor` and `prototype` (and
  // `__proto__`), GitHub logins the broker keys like any other, and a map would lack that owner's token.
  github_tokens: v.pipe(
    v.instance(Object),
    v.transform((tokens) => new Map<string, unknown>(Object.entries(tokens))),
    v.map(v.pipe(v.string(), v.regex(OWNER_KEY)), OwnerTokenAnswer),
    v.minSize(1),
  ),
  audit_event_id: v.optional(v.string()),
});

/**
 * A GitHub token map (requested_token_type …github-installation-token-map): one installation token per owner of the
 * repositories asked for, all or none. Its answer has no top-level access_token (RFC 8693 wants one, which an OAuth
 * client library insists on), so it is posted and read here rather than through openid-client.
 *
 * The map must name exactly the owners asked for, as the broker keys them: each key becomes part of a variable's or an
 * output's name (--exec-env and --github-env name a prefix), and a map that chose its own (`preload` after the prefix
 * `LD`) would set what the job never asked for. A map that is not used is refused with its tokens handed back
 * (refuseTokenMap).
 */
export async function exchangeForTokenMap(request: Omit<BrokerExchangeRequest, 'requestedTokenType'> & { readonly env: Environment }): Promise<IssuedTokenMap> {
  const { tokenEndpoint, subjectToken, parameters } = await prepareExchange({ ...request, requestedTokenType: TOKEN_TYPE.githubInstallationTokenMap });
  parameters.set('grant_type', TOKEN_EXCHANGE_GRANT);
  parameters.set('client_id', CLIENT_ID);
  const { response, sent, earlier } = await request.fetch.renewing(async (once, earlier) => {
    const sent = await subjectToken();
    try {
      const response = await once(tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: withSubjectToken(parameters, sent).toString(),
      });
      return { response, sent, earlier };
    } catch (error) {
      throw await classify(error, tokenEndpoint, sent, earlier);
    }
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (response.status >= 400 && response.status < 500) throw await refusalAfter(new BrokerRefusedError(response.status, body, sent), earlier, tokenEndpoint);
  const auditEventId = typeof body['audit_event_id'] === 'string' ? body['audit_event_id'] : undefined;
  if (response.status !== 200) throw new BrokerUnavailableError(`${tokenEndpoint} answered ${response.status}${oauthErrorOf(body)}`, { auditEventId });
  const asked = new Set(request.audiences.map(askedOwner));
  const unused = (problem: string) => refuseTokenMap(request, body, asked, `${tokenEndpoint} answered ${problem}`, auditEventId);
  const parsed = v.safeParse(TokenMapAnswer, body);
  if (!parsed.success) throw await unused(`a token map keyway cannot read: ${unreadable(parsed.issues)}`);
  const owners = [...parsed.output.github_tokens.keys()];
  if (owners.length !== asked.size || owners.some((owner) => !asked.has(owner))) {
    throw await unused(`a token map for the owners ${owners.join(', ')}, not for those asked: ${[...asked].join(', ')}`);
  }
  const entries = [...parsed.output.github_tokens];
  const timeless = entries.find(([, token]) => expiryDate(token.expires_in) === undefined);
  if (timeless !== undefined) throw await unused(`a token map whose ${timeless[0]} token has an expires_in no date holds`);
  return {
    auditEventId,
    tokens: entries.map(([owner, token]) => ({
      owner,
      accessToken: token.access_token,
      expiresAt: expiryOf(token.expires_in, tokenEndpoint, auditEventId),
      scope: token.scope,
      repositories: token.repositories,
      sha256: sha256Hex(token.access_token),
    })),
  };
}

/** The key the broker gives an asked repository's token (OWNER/REPO, or its URL as `resource`): the owner's login in lower case. */
function askedOwner(repository: string): string {
  const path = URL.canParse(repository) ? new URL(repository).pathname.replace(/^\//, '') : repository;
  return asciiLowerCase(path.split('/')[0] ?? '');
}

/**
 * A token map keyway does not use: the tokens it holds for owners the job asked for are live at GitHub for an hour, and no
 * one will use them. Each is masked before anything could print it and handed back as `--exec` hands one back when its
 * command ends, best effort; the error says what was done. A token under a key no one asked for is not sent anywhere.
 */
async function refuseTokenMap(
  request: Pick<BrokerExchangeRequest, 'url' | 'fetch' | 'mask'> & { readonly env: Environment },
  body: Readonly<Record<string, unknown>>,
  asked: ReadonlySet<string>,
  problem: string,
  auditEventId: string | undefined,
): Promise<BrokerUnavailableError> {
  const map = body['github_tokens'];
  const tokens = [...asked].flatMap((owner) => {
    const entry = typeof map === 'object' && map !== null && Object.hasOwn(map, owner) ? (map as Record<string, unknown>)[owner] : undefined;
    const token = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['access_token'] : undefined;
    return typeof token === 'string' && B64TOKEN.test(token) ? [token] : [];
  });
  for (const token of tokens) request.mask(token);
  const handBack = REVOCATIONS.get(GITHUB_INSTALLATION_TOKEN_TYPE)!;
  const outcomes = await Promise.allSettled(tokens.map((token) => handBack(token, { broker: request.url, env: request.env, fetch: request.fetch })));
  const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [describeNetworkError(outcome.reason)] : []));
  const done =
    tokens.length === 0
      ? 'it holds no token of an owner asked for'
      : failures.length === 0
        ? `its ${tokens.length} token(s) of owners asked for were not used, and were revoked`
        : `${failures.length} of its ${tokens.length} token(s) of owners asked for could not be revoked (${failures.join('; ')}): they stay live until they expire`;
  return new BrokerUnavailableError(`${problem}; ${done}`, { auditEventId });
}

/** Where an answer is not as expected, and what was: never the value received, which may be a live token not yet masked. */
function unreadable(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues.map((issue) => `${v.getDotPath(issue) ?? 'the answer'}: expected ${issue.expected ?? issue.type}`).join('; ');
}

/**
 * Discovery, the token endpoint (https, or http on loopback), the RFC 8693 parameters but the subject token, and where each
 * try gets the job's own CI token: read for the first, and read again for each retry from a source that gives a new one per
 * read (the broker may have used up the one it was sent, even in a 5xx), the same one again from any other.
 */
async function prepareExchange(
  request: BrokerExchangeRequest,
): Promise<{ config: client.Configuration; tokenEndpoint: string; subjectToken: () => Promise<string>; parameters: URLSearchParams }> {
  const insecure = request.url.protocol === 'http:' && isLoopbackHttpUrl(request.url);
  const config = await discover(request, insecure);
  const { issuer, token_endpoint: tokenEndpoint } = config.serverMetadata();
  if (tokenEndpoint === undefined) throw new BrokerUnavailableError(`${issuer} publishes no token_endpoint`);
  const endpoint = new URL(tokenEndpoint);
  if (endpoint.protocol !== 'https:' && !isLoopbackHttpUrl(endpoint)) throw new BrokerUnavailableError(`the token endpoint ${tokenEndpoint} is not https`);

  const audience = request.subjectAudience ?? issuer;
  let held: string | undefined;
  const subjectToken = async (): Promise<string> => {
    if (held !== undefined && request.source.renews !== true) return held;
    held = await request.source.read(audience);
    request.mask(held);
    request.log(`CI token from ${request.source.name} (audience ${audience}), sha256 ${sha256Hex(held)}`);
    return held;
  };

  const parameters = new URLSearchParams({
    subject_token_type: TOKEN_TYPE.idToken,
    requested_token_type: request.requestedTokenType ?? TOKEN_TYPE.accessToken,
  });
  for (const item of request.audiences) parameters.append('audience', item);
  if (request.scopes.length > 0) parameters.set('scope', request.scopes.join(' '));
  return { config, tokenEndpoint, subjectToken, parameters };
}

function withSubjectToken(parameters: URLSearchParams, subjectToken: string): URLSearchParams {
  const sent = new URLSearchParams(parameters);
  sent.set('subject_token', subjectToken);
  return sent;
}

/**
 * What the broker tells a pipeline when it refuses a CI token or a DPoP proof that an earlier request used up (reasons
 * `replayed` and `dpop_proof_replayed`; it names no reason code to a pipeline, only these descriptions).
 */
const USED_UP: ReadonlySet<string> = new Set([REASONS.replayed.description, REASONS.dpop_proof_replayed.description]);

/**
 * A retry's refusal, unless it refuses what an earlier try used up: a 5xx the broker answered after it claimed a
 * single-use CI token or the proof (GitHub failing to mint, the audit record not written), or a connection lost after the
 * request went out (a reset, a timeout), the broker's answer never read. Then the earlier failure is the cause, and the
 * error is that failure's (exit code 5), naming the refusal it led to.
 */
async function refusalAfter(
  refusal: BrokerRefusedError,
  earlier: EarlierTry | undefined,
  tokenEndpoint: string,
): Promise<BrokerRefusedError | BrokerUnavailableError> {
  if (earlier === undefined || !USED_UP.has(refusal.description ?? '')) return refusal;
  const retried = `the retry was then refused (HTTP ${refusal.status}): ${refusal.message}`;
  if (earlier.answer === undefined) {
    return new BrokerUnavailableError(`${tokenEndpoint}: ${earlier.reason}, perhaps after the broker used up what that try sent; ${retried}`, {
      cause: refusal,
    });
  }
  const body = (await earlier.answer
    .clone()
    .json()
    .catch(() => ({}))) as Record<string, unknown>;
  const auditEventId = typeof body['audit_event_id'] === 'string' ? body['audit_event_id'] : undefined;
  return new BrokerUnavailableError(
    `${tokenEndpoint} answered ${earlier.answer.status}${oauthErrorOf(body)}${auditEventId === undefined ? '' : ` in audit event ${auditEventId}`}, ` +
      `having used up what that try sent; ${retried}`,
    { cause: refusal, auditEventId },
  );
}

function oauthErrorOf(body: Readonly<Record<string, unknown>>): string {
  return typeof body['error'] === 'string' ? `: ${body['error']}${typeof body['error_description'] === 'string' ? ` (${body['error_description']})` : ''}` : '';
}

async function discover(request: Omit<BrokerExchangeRequest, 'mask'>, insecure: boolean): Promise<client.Configuration> {
  try {
    return await client.discovery(request.url, CLIENT_ID, undefined, client.None(), {
      algorithm: 'oauth2',
      [client.customFetch]: request.fetch,
      execute: insecure ? [client.allowInsecureRequests] : [],
      // Covers every retry of one request; each try has its own shorter timeout.
      timeout: 120,
    });
  } catch (error) {
    const reason = error instanceof client.ClientError || isNetworkError(error) ? describeNetworkError(error) : undefined;
    if (reason === undefined) throw error;
    throw new BrokerUnavailableError(`cannot discover the broker at ${request.url.href}: ${reason}`, { cause: error });
  }
}

async function classify(error: unknown, tokenEndpoint: string, subjectToken: string, earlier: EarlierTry | undefined): Promise<Error> {
  if (error instanceof client.ResponseBodyError) return refusalAfter(new BrokerRefusedError(error.status, error.cause, subjectToken), earlier, tokenEndpoint);
  // A 5xx (after the retries): openid-client hands back the response unread, so its RFC 6749 body can still be read.
  if (error instanceof client.ClientError && error.cause instanceof Response) {
    const status = error.cause.status;
    const body = (await error.cause.json().catch(() => ({}))) as Record<string, unknown>;
    const auditEventId = typeof body['audit_event_id'] === 'string' ? body['audit_event_id'] : undefined;
    if (status >= 400 && status < 500) return refusalAfter(new BrokerRefusedError(status, body), earlier, tokenEndpoint);
    return new BrokerUnavailableError(`${tokenEndpoint} answered ${status}${oauthErrorOf(body)}`, { cause: error, auditEventId });
  }
  if (error instanceof client.ClientError || isNetworkError(error))
    return new BrokerUnavailableError(`${tokenEndpoint}: ${describeNetworkError(error)}`, { cause: error });
  // The CI token went to the broker alone: a redirect is not followed with it, and is the broker's (or its proxy's) failure;
  // so is an answer longer than any token answer, or one that broke off.
  if (error instanceof RedirectRefusedError || error instanceof FetchError) return new BrokerUnavailableError(error.message, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}

function isNetworkError(error: unknown): boolean {
  return (
    (error instanceof TypeError && error.message === 'fetch failed') ||
    (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError'))
  );
}
