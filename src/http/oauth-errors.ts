import type { Refusal } from '../core/errors/reasons.ts';
import type { ExchangeAnswer } from '../core/exchange/exchange-token.ts';

/** The RFC 6749 §5.2 (and RFC 8693, RFC 8707, RFC 9449; RFC 6750 for the operator routes) error codes keyway answers with. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_target'
  | 'invalid_scope'
  | 'unsupported_grant_type'
  | 'temporarily_unavailable'
  | 'server_error'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'access_denied';

interface OAuthError {
  readonly status: 400 | 401 | 403 | 404 | 405 | 413 | 415 | 429 | 500 | 502 | 503 | 504;
  readonly error: OAuthErrorCode;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The one place a refusal's reason code becomes an HTTP status and an RFC 6749 error. Typed over
 * every Refusal, so a new reason code does not compile until it is given both here.
 */
export const OAUTH_ERRORS = {
  malformed_request: { status: 400, error: 'invalid_request' },
  method_not_allowed: { status: 405, error: 'invalid_request', headers: { Allow: 'POST' } },
  unsupported_media_type: { status: 415, error: 'invalid_request' },
  request_too_large: { status: 413, error: 'invalid_request' },
  unsupported_grant_type: { status: 400, error: 'unsupported_grant_type' },
  target_malformed: { status: 400, error: 'invalid_target' },
  token_malformed: { status: 400, error: 'invalid_request' },
  header_forbidden: { status: 400, error: 'invalid_request' },
  algorithm_not_allowed: { status: 400, error: 'invalid_request' },
  issuer_untrusted: { status: 400, error: 'invalid_request' },
  signature_invalid: { status: 400, error: 'invalid_request' },
  token_expired: { status: 400, error: 'invalid_request' },
  token_not_yet_valid: { status: 400, error: 'invalid_request' },
  token_too_old: { status: 400, error: 'invalid_request' },
  token_lifetime_too_long: { status: 400, error: 'invalid_request' },
  audience_mismatch: { status: 400, error: 'invalid_request' },
  claims_invalid: { status: 400, error: 'invalid_request' },
  no_policy_matched: { status: 400, error: 'invalid_request' },
  denied_by_policy: { status: 400, error: 'invalid_request' },
  audience_not_granted: { status: 400, error: 'invalid_target' },
  scope_not_granted: { status: 400, error: 'invalid_scope' },
  template_claim_missing: { status: 400, error: 'invalid_request' },
  template_value_forbidden: { status: 400, error: 'invalid_request' },
  github_repository_not_granted: { status: 400, error: 'invalid_target' },
  github_permission_not_granted: { status: 400, error: 'invalid_scope' },
  replayed: { status: 400, error: 'invalid_request' },
  ci_work_ended: { status: 400, error: 'invalid_request' },
  cloud_role_not_granted: { status: 400, error: 'invalid_target' },
  cloud_limit_exceeded: { status: 400, error: 'invalid_request' },
  rate_limited: { status: 429, error: 'temporarily_unavailable' },
  replay_guard_unavailable: { status: 503, error: 'temporarily_unavailable' },
  issuer_unavailable: { status: 503, error: 'temporarily_unavailable' },
  github_unavailable: { status: 503, error: 'temporarily_unavailable' },
  github_refused: { status: 503, error: 'temporarily_unavailable' },
  github_revocation_unavailable: { status: 503, error: 'temporarily_unavailable' },
  internal_error: { status: 500, error: 'server_error' },
  github_permission_not_allowed: { status: 400, error: 'invalid_scope' },
  github_owner_mismatch: { status: 400, error: 'invalid_target' },
  dpop_proof_invalid: { status: 400, error: 'invalid_dpop_proof' },
  dpop_proof_replayed: { status: 400, error: 'invalid_dpop_proof' },
  dpop_nonce_required: { status: 400, error: 'use_dpop_nonce' },
  dpop_required: { status: 400, error: 'invalid_dpop_proof' },
  dpop_not_supported: { status: 400, error: 'invalid_request' },
  subject_token_bound: { status: 400, error: 'invalid_dpop_proof' },
  actor_token_bound: { status: 400, error: 'invalid_dpop_proof' },
  actor_not_permitted: { status: 400, error: 'invalid_request' },
  actor_chain_too_deep: { status: 400, error: 'invalid_request' },
  org_guardrails_unusable: { status: 503, error: 'temporarily_unavailable' },
  operator_token_invalid: { status: 401, error: 'invalid_token' },
  operator_scope_missing: { status: 403, error: 'insufficient_scope' },
  proxy_unauthenticated: { status: 401, error: 'invalid_token', headers: { 'WWW-Authenticate': 'Bearer' } },
  proxy_upstream_unknown: { status: 404, error: 'invalid_request' },
  proxy_path_refused: { status: 400, error: 'invalid_request' },
  proxy_header_refused: { status: 400, error: 'invalid_request' },
  proxy_not_allowed: { status: 403, error: 'access_denied' },
  proxy_upstream_unavailable: { status: 502, error: 'temporarily_unavailable' },
  proxy_upstream_timeout: { status: 504, error: 'temporarily_unavailable' },
  proxy_redirect_refused: { status: 502, error: 'temporarily_unavailable' },
  proxy_response_too_large: { status: 502, error: 'temporarily_unavailable' },
  proxy_revocation_unavailable: { status: 503, error: 'temporarily_unavailable' },
} as const satisfies Record<Refusal, OAuthError>;

/** No audit record, so no token: the exchange is unavailable until the audit log is back. */
const AUDIT_UNAVAILABLE = { status: 503, error: 'temporarily_unavailable' } as const satisfies OAuthError;

/** Characters `error_description` may not hold (RFC 6749 §5.2, RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E), one code point each. */
const NOT_DESCRIPTION_CHAR = /[^\x20\x21\x23-\x5b\x5d-\x7e]/gu;

/** The longest `error_description` keyway sends: its own words fit many times over; a long echo of the request is cut. */
const ERROR_DESCRIPTION_MAX_CHARS = 512;
const CUT = '...';

/**
 * `text` as an `error_description` may carry it: `"` becomes `'`, every other character outside the set (a control
 * character, `\`, anything not ASCII) becomes `?`, and past ERROR_DESCRIPTION_MAX_CHARS it is cut and ends in `...`.
 * A description often quotes the request back (an audience, a parameter, a claim), so this is applied to every answer
 * keyway sends (conforming-error-descriptions.ts), not where each description is written.
 */
export function conformingDescription(text: string): string {
  const conforming = text.replaceAll('"', "'").replace(NOT_DESCRIPTION_CHAR, '?');
  return conforming.length <= ERROR_DESCRIPTION_MAX_CHARS ? conforming : `${conforming.slice(0, ERROR_DESCRIPTION_MAX_CHARS - CUT.length)}${CUT}`;
}

/** Token endpoint answers are never cached (RFC 6749 §5.1). */
export const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' } as const;
/** On every answer keyway writes (http/response-headers.ts), the ones the runtimes answer in front of the app included. */
export const NO_SNIFF = { 'X-Content-Type-Options': 'nosniff' } as const;

export interface OAuthResponse {
  readonly status: 200 | OAuthError['status'];
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * An exchange's answer over HTTP: the token (RFC 8693 §2.2.1) or the error (RFC 6749 §5.2), with
 * the audit event id when the exchange was recorded, `Retry-After` for a rate limit and `Allow`
 * for a wrong method.
 */
export function oauthResponse(answer: ExchangeAnswer, auditEventId: string | undefined): OAuthResponse {
  const recorded = auditEventId === undefined ? {} : { audit_event_id: auditEventId };
  if (answer.kind === 'granted') return { status: 200, body: { ...answer.token, ...recorded }, headers: NO_STORE };
  const spec: OAuthError = answer.kind === 'refused' ? OAUTH_ERRORS[answer.reason] : AUDIT_UNAVAILABLE;
  const retryAfter: Record<string, string> =
    answer.kind === 'refused' && answer.retryAfterSeconds !== undefined ? { 'Retry-After': String(answer.retryAfterSeconds) } : {};
  return {
    status: spec.status,
    body: {
      error: spec.error,
      error_description: answer.description,
      ...recorded,
      ...(answer.kind === 'refused' && answer.diagnostics !== undefined ? { diagnostics: answer.diagnostics } : {}),
    },
    headers: { ...NO_STORE, ...spec.headers, ...retryAfter },
  };
}
