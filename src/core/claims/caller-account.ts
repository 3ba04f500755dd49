import { canonicalText, claimReader } from './claim-value.ts';

/** What a verified caller's budgets are charged to: its issuer, and the account its token names (else its subject). */
export interface CallerAccount {
  readonly issuer: string;
  readonly account: string;
  /** Its issuer's first tenant claim, when its token holds it: the account, where there is one beyond the subject. */
  readonly tenant?: string;
}

/**
 * The tenant claims of the broker's own tokens: `client_id`, the policy that granted one, whose `match` pinned the account
 * it granted. Their `sub` is that policy's template, which another account's policy can write alike.
 */
export const OWN_TOKEN_TENANT_CLAIMS: readonly string[] = ['client_id'];

/**
 * A verified caller's account and subject: what the budgets of its repository-policy fetches are charged to, since one
 * account can mint tokens of many subjects.
 */
export interface VerifiedCaller extends CallerAccount {
  readonly subject: string;
}

/** A verified identity in a limit's buckets: its account, and its `sub` (another account's token may carry the same `sub`). */
export function subjectBucketKey(caller: CallerAccount, subject: string): string {
  return `${accountBucketKey(caller)}\n${JSON.stringify(subject)}`;
}

/**
 * A verified account in a limit's buckets: one for all its subjects. The account and a subject are written as JSON, so that
 * neither holds the line feed between the parts: a token's claims may hold one, which would let one caller's key spell
 * another's (an account `a\nb` with subject `c`, the account `a` with subject `b\nc`; a subject with an audience).
 */
export function accountBucketKey({ issuer, account }: CallerAccount): string {
  return `${issuer}\n${JSON.stringify(account)}`;
}

/** Filled in once a caller's token verified: the account its refusals' records are charged to (refusalToAnswer). */
export interface VerifiedAs {
  caller?: CallerAccount;
  /**
   * Whether an enforcing allow policy's `match` holds for the caller's token: a pipeline the policies know, never a
   * stranger. Asked of a refusal that came before the policies decided (a thief's use of a bound or ended job's token).
   */
  knownToPolicies?: () => boolean;
}

/** The caller's tenant: the first of its issuer's tenant claims (a name or a JSON Pointer), when its token holds it as a scalar. */
export function tenantOf(tenantClaims: readonly string[], claims: Readonly<Record<string, unknown>>): string | undefined {
  const [claim] = tenantClaims;
  return claim === undefined ? undefined : canonicalText(claimReader(claim)(claims));
}

/**
 * The account a verified caller belongs to: its tenant, or its subject when its issuer names none (one account can mint
 * tokens of as many subjects as it has branches, environments or matrix jobs; a subject is all an issuer without tenants
 * tells apart). The two are spelled apart, so a tenant never shares a subject's budget.
 */
export function callerAccount(issuer: string, tenantClaims: readonly string[], claims: Readonly<Record<string, unknown>>): CallerAccount {
  return accountOf(issuer, tenantOf(tenantClaims, claims), String(claims['sub']));
}

/** The account of a caller of `issuer` whose tenant is `tenant` (undefined: its token names none), as callerAccount spells it. */
export function accountOf(issuer: string, tenant: string | undefined, subject: string): CallerAccount {
  return tenant === undefined ? { issuer, account: `subject ${subject}` } : { issuer, account: `tenant ${tenant}`, tenant };
}
