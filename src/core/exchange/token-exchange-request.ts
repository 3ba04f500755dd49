import { ExchangeError } from '../errors/exchange-error.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  /** keyway's own type: a GitHub App installation token (`grant.github`). */
  githubInstallationToken: 'urn:keyway:params:oauth:token-type:github-installation-token',
  /** keyway's own type: one GitHub App installation token per owner the resources name, answered as a map (github-token-map.ts). */
  githubInstallationTokenMap: 'urn:keyway:params:oauth:token-type:github-installation-token-map',
} as const;

export const REQUEST_LIMITS = {
  /** Whole form body. */
  bodyBytes: 64 * 1024,
  /** CI ID tokens are 1-3 KB; anything near this is not one. */
  subjectTokenBytes: 16 * 1024,
  /** Repeated `audience` plus `resource` parameters. */
  targets: 10,
  targetChars: 2048,
  scopeChars: 2048,
} as const;

/** An RFC 8693 token-exchange request, validated. */
export interface TokenExchangeRequest {
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  /** `audience` and `resource` values together, in request order, without duplicates. */
  readonly audiences: readonly string[];
  /** Requested scopes, or undefined when the caller asked for the policy's default. */
  readonly scopes: readonly string[] | undefined;
  readonly requestedTokenType: string;
  /** RFC 8693 delegation: the token of the party acting for the subject (`actor_token`), verified as a subject token is. */
  readonly actorToken?: string;
}

const SINGLE_VALUED = ['grant_type', 'subject_token', 'subject_token_type', 'scope', 'requested_token_type', 'actor_token', 'actor_token_type'] as const;

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function malformed(detail: string): ExchangeError {
  return new ExchangeError('malformed_request', detail, { public: true });
}

/**
 * Parses the form body of `POST /token` (RFC 8693 §2.1, RFC 6749 §3.1): parameters without a
 * value count as omitted, unknown parameters are ignored, and only `audience` and `resource`
 * may repeat.
 */
export function parseTokenExchangeRequest(form: URLSearchParams): TokenExchangeRequest {
  const single = new Map<string, string>();
  for (const name of SINGLE_VALUED) {
    const values = form.getAll(name).filter((value) => value !== '');
    if (values.length > 1) throw malformed(`parameter ${name} must not be repeated`);
    if (values[0] !== undefined) single.set(name, values[0]);
  }

  const grantType = single.get('grant_type');
  if (grantType === undefined) throw malformed('missing grant_type');
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    throw new ExchangeError('unsupported_grant_type', 'unsupported grant_type', { public: true });
  }

  const subjectToken = single.get('subject_token');
  if (subjectToken === undefined) throw malformed('missing subject_token');
  if (subjectToken.length > REQUEST_LIMITS.subjectTokenBytes) throw malformed('subject_token is too large');
  if (!COMPACT_JWS.test(subjectToken)) {
    throw new ExchangeError('token_malformed', 'subject_token is not a compact JWS', { public: true });
  }

  const subjectTokenType = single.get('subject_token_type');
  if (subjectTokenType === undefined) throw malformed('missing subject_token_type');
  if (subjectTokenType !== TOKEN_TYPE.idToken && subjectTokenType !== TOKEN_TYPE.jwt) {
    throw malformed(`subject_token_type must be ${TOKEN_TYPE.idToken} or ${TOKEN_TYPE.jwt}`);
  }

  const actorToken = single.get('actor_token');
  const actorTokenType = single.get('actor_token_type');
  if ((actorToken === undefined) !== (actorTokenType === undefined)) throw malformed('actor_token and actor_token_type go together');
  if (actorTokenType !== undefined && actorTokenType !== TOKEN_TYPE.idToken && actorTokenType !== TOKEN_TYPE.jwt) {
    throw malformed(`actor_token_type must be ${TOKEN_TYPE.idToken} or ${TOKEN_TYPE.jwt}`);
  }
  if (actorToken !== undefined && actorToken.length > REQUEST_LIMITS.subjectTokenBytes) throw malformed('actor_token is too large');
  if (actorToken !== undefined && !COMPACT_JWS.test(actorToken)) {
    throw new ExchangeError('token_malformed', 'actor_token is not a compact JWS', { public: true });
  }

  const requestedTokenType = single.get('requested_token_type') ?? TOKEN_TYPE.accessToken;
  // id_token: a token for a cloud's web-identity federation (`grant.cloud`).
  const requestable: readonly string[] = [
    TOKEN_TYPE.accessToken,
    TOKEN_TYPE.githubInstallationToken,
    TOKEN_TYPE.idToken,
    TOKEN_TYPE.githubInstallationTokenMap,
  ];
  if (!requestable.includes(requestedTokenType)) throw malformed(`requested_token_type must be one of ${requestable.join(', ')}`);

  return {
    subjectToken,
    subjectTokenType,
    audiences: parseTargets(form),
    scopes: parseScope(single.get('scope')),
    requestedTokenType,
    ...(actorToken === undefined ? {} : { actorToken }),
  };
}

function parseTargets(form: URLSearchParams): string[] {
  const audiences = form.getAll('audience').filter((value) => value !== '');
  const resources = form.getAll('resource').filter((value) => value !== '');
  if (audiences.length + resources.length > REQUEST_LIMITS.targets) {
    throw malformed(`at most ${REQUEST_LIMITS.targets} audience and resource parameters are accepted`);
  }
  for (const target of [...audiences, ...resources]) {
    if (target.length > REQUEST_LIMITS.targetChars) throw malformed('audience or resource is too long');
  }
  for (const resource of resources) {
    // RFC 8707 §2: an absolute URI without a fragment.
    if (!URL.canParse(resource) || resource.includes('#')) {
      throw new ExchangeError('target_malformed', 'resource must be an absolute URI without a fragment', { public: true });
    }
  }
  return [...new Set([...audiences, ...resources])];
}

function parseScope(scope: string | undefined): string[] | undefined {
  if (scope === undefined) return undefined;
  if (scope.length > REQUEST_LIMITS.scopeChars) throw malformed('scope is too long');
  const scopes = scope.split(' ').filter((token) => token !== '');
  if (scopes.length === 0) return undefined;
  if (!scopes.every((token) => SCOPE_TOKEN.test(token))) throw malformed('scope contains characters RFC 6749 does not allow');
  return [...new Set(scopes)];
}
