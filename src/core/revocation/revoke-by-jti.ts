import type { AuditEvent } from '../audit/audit-event.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../mint/verify-access-token.ts';
import { appendExamination, examinationRecord, type RevocationDeps } from './examine-token.ts';

/**
 * What an operator's revocation by `jti` did: revoked it now, found it ended already, found a cloud token's (which the cloud
 * checks, never keyway's list), or found no token of that `jti`.
 */
export type RevocationByJti =
  | { readonly status: 'revoked'; readonly exp: number; readonly auditEventId: string; readonly grantedIn: string }
  | { readonly status: 'already_revoked' | 'expired'; readonly exp: number; readonly grantedIn: string }
  | { readonly status: 'cloud_token'; readonly grantedIn: string }
  | { readonly status: 'not_found' };

/** The reasons of the records that hand out a keyway token (`issued`): an exchange's grant and an /audit page sign-in's session. */
const ISSUING_REASONS = ['granted', 'audit_page_signed_in'] as const;
/** How many records naming the `jti` are read to find its grant: the grant comes first in time, before any use of the token. */
const RECORDS_READ = 100;

/**
 * Ends a keyway token an operator knows only from the audit log (an incident: the token leaked, or the job went wrong), by
 * its `jti`, as RFC 7009 ends one presented. The token's grant record says it is this broker's and when it expires; a
 * `jti` no grant record issued (pruned, another broker's, made up) revokes nothing. Resolves once the revocation and its
 * `token_revoked` record are durable.
 */
export async function revokeByJti(deps: RevocationDeps, jti: string, operator: string, context: RequestContext): Promise<RevocationByJti> {
  const grant = await grantRecordOf(deps, jti);
  if (grant?.issued === undefined) return { status: 'not_found' };
  if (grant.cloud !== undefined) return { status: 'cloud_token', grantedIn: grant.id };
  const { exp } = grant.issued;
  const now = deps.now();
  if (exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS <= now / 1000) return { status: 'expired', exp, grantedIn: grant.id };
  if (await deps.revocations.isRevoked(jti, now)) return { status: 'already_revoked', exp, grantedIn: grant.id };
  const event = examinationRecord(deps, {
    caller: { operator },
    reason: 'token_revoked',
    detail: `revoked keyway token ${jti} (granted in ${grant.id}) by operator ${operator}, by its jti`,
    context,
    now,
  });
  // Not presented, so known by its jti alone: what an auditor's search by jti finds it by.
  event.subject_token = { jti };
  const auditEventId = await appendExamination(deps, event);
  await deps.revocations.revoke({ jti, exp }, auditEventId, now);
  return { status: 'revoked', exp, auditEventId, grantedIn: grant.id };
}

/** The record that issued the token: a `jti` also matches the subject tokens of other records, which a caller chooses. */
async function grantRecordOf(deps: Pick<RevocationDeps, 'audit'>, jti: string): Promise<AuditEvent | undefined> {
  const { records } = await deps.audit.query({ jti, decisions: ['granted'], reasons: [...ISSUING_REASONS], order: 'asc', limit: RECORDS_READ });
  return records.find(({ event }) => event.issued?.jti === jti)?.event;
}
