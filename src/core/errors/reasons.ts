/**
 * Every outcome of a token exchange has one stable reason code. The code is what the audit
 * log records and what auditors filter on; the OAuth error and HTTP status the caller sees are
 * the HTTP layer's (http/oauth-errors.ts). The caller never learns more than the public
 * description and the audit id.
 */
export type Decision = 'granted' | 'denied' | 'malformed' | 'error';

interface ReasonSpec {
  readonly decision: Decision;
  /** What the caller is told. Deliberately coarse for policy outcomes. */
  readonly description: string;
}

const UNVERIFIED = "the subject token could not be verified: its issuer is not one a policy trusts, or it is not signed with that issuer's keys and algorithms";

export const REASONS = {
  granted: { decision: 'granted', description: 'token issued' },

  malformed_request: { decision: 'malformed', description: 'the request is malformed' },
  method_not_allowed: { decision: 'malformed', description: 'the token endpoint only accepts POST' },
  unsupported_media_type: { decision: 'malformed', description: 'the request body must be application/x-www-form-urlencoded' },
  request_too_large: { decision: 'malformed', description: 'the request body is too large' },
  unsupported_grant_type: {
    decision: 'malformed',
    description: 'grant_type must be urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer or client_credentials',
  },
  target_malformed: { decision: 'malformed', description: 'resource must be an absolute URI without a fragment' },
  token_malformed: { decision: 'malformed', description: 'the subject token is not a well-formed signed JWT' },

  header_forbidden: { decision: 'denied', description: 'the subject token header names a key location (jku, x5u, x5c or jwk), which is never accepted' },
  // One answer for the three: a stranger's forgery must not tell which issuers the policies trust (the record says which).
  algorithm_not_allowed: { decision: 'denied', description: UNVERIFIED },
  issuer_untrusted: { decision: 'denied', description: UNVERIFIED },
  signature_invalid: { decision: 'denied', description: UNVERIFIED },
  token_expired: { decision: 'denied', description: 'the subject token has expired' },
  token_not_yet_valid: { decision: 'denied', description: 'the subject token is not valid yet' },
  token_too_old: { decision: 'denied', description: 'the subject token was issued too long ago' },
  token_lifetime_too_long: { decision: 'denied', description: "the subject token lives longer than its issuer's tokens may; request a short-lived one" },
  // As a token no policy matched: anyone can have a shared issuer mint a token for the audience they name.
  audience_mismatch: { decision: 'denied', description: 'no trust policy grants this request' },
  claims_invalid: { decision: 'denied', description: 'the subject token claims are missing or of the wrong type' },
  no_policy_matched: { decision: 'denied', description: 'no trust policy grants this request' },
  denied_by_policy: { decision: 'denied', description: 'no trust policy grants this request' },
  audience_not_granted: { decision: 'denied', description: 'the requested audience is not granted' },
  scope_not_granted: { decision: 'denied', description: 'the requested scope is not granted' },
  template_claim_missing: { decision: 'denied', description: 'no trust policy grants this request' },
  template_value_forbidden: { decision: 'denied', description: 'no trust policy grants this request' },
  github_repository_not_granted: { decision: 'denied', description: 'the requested GitHub repository is not granted' },
  github_permission_not_granted: { decision: 'denied', description: 'the requested GitHub permission is not granted' },
  replayed: { decision: 'denied', description: 'the subject token was already exchanged and is single use; request a new one from the CI system' },
  ci_work_ended: {
    decision: 'denied',
    description: "the subject token's CI job, or its run's attempt, has completed: a finished job's token is not exchanged",
  },
  cloud_role_not_granted: { decision: 'denied', description: 'no trust policy grants a cloud token for the requested role, service account or application' },
  cloud_limit_exceeded: {
    decision: 'denied',
    description: "a value the cloud token would carry breaks the cloud's limits (AWS session tags, subject length); keyway never truncates it",
  },

  rate_limited: { decision: 'denied', description: 'too many requests; retry after the number of seconds in Retry-After' },

  replay_guard_unavailable: {
    decision: 'error',
    description: 'single use of the subject token, or whether its CI job has completed, cannot be checked right now, so no token was issued; retry later',
  },
  issuer_unavailable: { decision: 'error', description: "the subject token issuer's keys cannot be fetched right now; retry later" },
  github_unavailable: { decision: 'error', description: 'GitHub cannot mint the token right now, so none was issued; retry later' },
  github_refused: {
    decision: 'error',
    description:
      'GitHub refused to mint the token: the App is not installed for the owner, or its installation lacks a granted repository or permission; the broker operator must fix the installation',
  },
  github_revocation_unavailable: {
    decision: 'error',
    description: "the GitHub token's revocation could not be scheduled, so GitHub's token was taken back and none was issued; retry later",
  },
  internal_error: { decision: 'error', description: 'internal error' },
  github_permission_not_allowed: {
    decision: 'denied',
    description: "the GitHub organization permission is not on the broker's allowlist (KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS)",
  },
  github_owner_mismatch: { decision: 'denied', description: 'the GitHub account is not the one the policy pins by id' },
  dpop_proof_invalid: { decision: 'denied', description: 'the DPoP proof is not valid for this request' },
  dpop_proof_replayed: { decision: 'denied', description: 'the DPoP proof was already used; make a new proof for every request' },
  dpop_nonce_required: { decision: 'denied', description: 'the DPoP proof must carry the nonce from the DPoP-Nonce header of this answer' },
  dpop_required: { decision: 'denied', description: 'the granting policy requires a DPoP proof' },
  dpop_not_supported: {
    decision: 'denied',
    description: 'a GitHub installation token or a cloud token cannot be bound to a DPoP key; send no DPoP proof for it',
  },
  token_revoked: { decision: 'granted', description: 'the keyway token was revoked, or a GitHub installation token handed back to be revoked (RFC 7009)' },
  token_introspected: { decision: 'granted', description: 'a keyway token was introspected (RFC 7662)' },
  signing_key_withdrawn: {
    decision: 'granted',
    description: "an operator withdrew one of the broker's signing keys (compromised), or asked to withdraw one removed already",
  },
  signing_key_rotation_requested: { decision: 'granted', description: "an operator asked for a rotation of the broker's signing keys" },
  audit_page_signed_in: { decision: 'granted', description: 'an operator signed in to the /audit page: a session token for the page alone was issued' },
  actor_not_permitted: { decision: 'denied', description: "the subject token's may_act does not name the actor" },
  actor_chain_too_deep: { decision: 'denied', description: 'the chain of actors (act) is deeper than keyway accepts' },
  subject_token_bound: {
    decision: 'denied',
    description: 'the subject token is bound to a key (cnf); send a DPoP proof made with that key, or a subject token that is not bound',
  },
  actor_token_bound: {
    decision: 'denied',
    description: 'the actor token is bound to a key (cnf); send a DPoP proof made with that key, or an actor token that is not bound',
  },
  org_guardrails_unusable: {
    decision: 'error',
    description:
      "the organisation's own guardrails cannot be read or do not load, so its repositories' own policies grant nothing; its owners or the broker operator must fix them",
  },
  proxy_completed: { decision: 'granted', description: 'a proxied request was answered by its upstream (the outcome record of an allowed request)' },
  proxy_unauthenticated: {
    decision: 'denied',
    description: 'a proxied request needs Authorization: Bearer with a CI OIDC token or a keyway access token (or DPoP with its proof)',
  },
  proxy_upstream_unknown: { decision: 'malformed', description: 'no upstream of that name is declared' },
  proxy_path_refused: {
    decision: 'malformed',
    description: 'the request path is ambiguous (dot segments, encoded slashes, double encoding, empty segments, path parameters or control characters)',
  },
  proxy_header_refused: {
    decision: 'malformed',
    description:
      'the request carries what the proxy refuses: a method override (a header, or a _method field), a header or a sudo field naming whom the upstream should act as, conflicting Content-Length and Transfer-Encoding, or a body frameworks would read differently',
  },
  proxy_not_allowed: { decision: 'denied', description: 'no trust policy allows this request through the proxy' },
  proxy_upstream_unavailable: { decision: 'error', description: 'the upstream could not be reached, or its credential could not be had; retry later' },
  proxy_upstream_timeout: { decision: 'error', description: 'the upstream did not answer in time' },
  proxy_redirect_refused: { decision: 'error', description: 'the upstream redirected to another host, which the proxy never follows' },
  proxy_response_too_large: { decision: 'error', description: "the upstream's answer is larger than the proxy passes on" },
  proxy_revocation_unavailable: {
    decision: 'error',
    description: 'whether the keyway token was revoked cannot be checked right now, so it was not used; retry later',
  },
  operator_token_invalid: {
    decision: 'denied',
    description: 'the operator credential (a keyway access token for this broker) is missing, not valid, expired or revoked',
  },
  operator_scope_missing: { decision: 'denied', description: 'the operator credential lacks a scope the request needs' },
  proxy_credential_late: {
    decision: 'granted',
    description: 'a GitHub installation token was minted for a proxied request after its deadline had answered it; it is on its revocation schedule',
  },
} as const satisfies Record<string, ReasonSpec>;

export type Reason = keyof typeof REASONS;

/**
 * The `granted` records of housekeeping: an `/audit` page sign-in, a revocation (a sign-out, a `/revoke`, a CI job's end),
 * an introspection, and an operator's work on the signing keys (a withdrawal, a rotation). Each names its operator, and
 * the first three the token they were shown (by its hash), but none grants access to anything: the usage roll-up (the
 * inventory) counts none of them, and none is an earlier use of the token it names for the `subject_token_replayed` alert.
 */
export const HOUSEKEEPING_REASONS = [
  'audit_page_signed_in',
  'token_revoked',
  'token_introspected',
  'signing_key_withdrawn',
  'signing_key_rotation_requested',
] as const satisfies readonly Reason[];

/** Every reason whose decision is not `granted`: why no token was issued. */
export type Refusal = { [K in Reason]: (typeof REASONS)[K]['decision'] extends 'granted' ? never : K }[Reason];

/**
 * The name a caller sees for a reason where an answer names one (the proxy's `Keyway-Error`): reasons whose descriptions
 * are one on purpose, so a stranger learns nothing of the policies, share one name there too. The record keeps the reason.
 */
const PUBLIC_NAMES: Partial<Record<Reason, string>> = {
  algorithm_not_allowed: 'subject_token_unverified',
  issuer_untrusted: 'subject_token_unverified',
  signature_invalid: 'subject_token_unverified',
  audience_mismatch: 'no_policy_matched',
  denied_by_policy: 'no_policy_matched',
  template_claim_missing: 'no_policy_matched',
  template_value_forbidden: 'no_policy_matched',
};

export function publicReasonName(reason: Reason): string {
  return PUBLIC_NAMES[reason] ?? reason;
}
