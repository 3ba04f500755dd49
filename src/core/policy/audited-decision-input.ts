import type { AuditEvent } from '../audit/audit-event.ts';
import { AUDIT_BOUNDS, jsonShowsCut, textShowsCut } from '../audit/bound-audit-event.ts';
import type { AccessRequest } from './decide.ts';

/**
 * The claims an audit record lets a decision be made again with: the verified claims it kept
 * (those some policy read then, and the issuer preset's audit claims), its issuer and subject,
 * and the broker as `aud` (every verified token carried an accepted audience). Undefined when the
 * subject token never verified: no policy was evaluated for it.
 */
export function auditedClaims(event: AuditEvent, brokerIssuer: string): Record<string, unknown> | undefined {
  if (event.issuer === undefined || event.claims === undefined) return undefined;
  return { aud: brokerIssuer, ...event.claims, iss: event.issuer, ...(event.subject === undefined ? {} : { sub: event.subject }) };
}

/** The audience and scopes the recorded request asked for; no scope recorded means "every scope granted". */
export function auditedRequest(request: Pick<AuditEvent['request'], 'audience' | 'scope'> | undefined): AccessRequest {
  const scopes = request?.scope;
  return { audiences: [...(request?.audience ?? [])], scopes: scopes === undefined || scopes.length === 0 ? undefined : scopes };
}

/** What of the claims and request a replay reads the record kept cut (bound-audit-event.ts), by claim name and list. */
export interface RecordedCuts {
  readonly claims: readonly string[];
  readonly request: readonly ('audience' | 'scope')[];
}

/**
 * Which claims auditedClaims gives and which lists auditedRequest asks for a record kept cut: a value longer than
 * the record keeps, which a replay reads as kept rather than as the decision read it. `iss` is the record's issuer,
 * never cut; `sub` its subject when it names one.
 */
export function recordedCuts(event: AuditEvent): RecordedCuts {
  const subject = event.subject;
  const claims = Object.entries(event.claims ?? {})
    .filter(([name, value]) => name !== 'iss' && !(name === 'sub' && subject !== undefined) && jsonShowsCut(value, AUDIT_BOUNDS.value))
    .map(([name]) => name);
  if (subject !== undefined && textShowsCut(subject)) claims.push('sub');
  const lists = (['audience', 'scope'] as const).filter((list) => jsonShowsCut(event.request[list], AUDIT_BOUNDS.value));
  return { claims: claims.sort(), request: lists };
}
