import type { AuditEvent } from '../audit/audit-event.ts';
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
