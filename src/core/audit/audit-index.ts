import type { AuditEvent } from './audit-event.ts';

/**
 * The columns stored beside each audit record, which queries, filters, stats and alert rules
 * read instead of the event. Only the event is hashed, so they are held to it: `auditIndex`
 * is the one derivation, used by the writer (on both runtimes) and by `audit verify`, which
 * reads an edited column (a grant turned into a denial) as tampering.
 */
export type AuditIndex = {
  readonly id: string;
  /** `time` in milliseconds since the epoch. */
  readonly time: number;
  readonly decision: string;
  readonly reason: string;
  /** The verified issuer and subject, or for a token that did not verify the ones it claimed. */
  readonly issuer: string | null;
  readonly subject: string | null;
  /** The granting policy, or the first denying one. */
  readonly policy_id: string | null;
  /** `repository` (GitHub) or `project_path` (GitLab) of a verified token. */
  readonly repository: string | null;
  readonly client_ip: string | null;
  readonly subject_sha256: string | null;
  readonly subject_jti: string | null;
  readonly issued_jti: string | null;
};

/** The column names, each once. */
export const AUDIT_INDEX_COLUMNS = Object.keys({
  id: 0,
  time: 0,
  decision: 0,
  reason: 0,
  issuer: 0,
  subject: 0,
  policy_id: 0,
  repository: 0,
  client_ip: 0,
  subject_sha256: 0,
  subject_jti: 0,
  issued_jti: 0,
} satisfies Record<keyof AuditIndex, 0>) as readonly (keyof AuditIndex)[];

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export function auditIndex(event: AuditEvent): AuditIndex {
  const claims = event.claims ?? {};
  return {
    id: event.id,
    time: Date.parse(event.time),
    decision: event.decision,
    reason: event.reason,
    issuer: event.issuer ?? event.subject_token?.claimed_iss ?? null,
    subject: event.subject ?? event.subject_token?.claimed_sub ?? null,
    policy_id: event.policy?.granted_by ?? event.policy?.denied_by[0] ?? null,
    repository: stringOrNull(claims['repository']) ?? stringOrNull(claims['project_path']),
    client_ip: event.request.client_ip ?? null,
    subject_sha256: event.subject_token?.sha256 ?? null,
    subject_jti: event.subject_token?.jti ?? null,
    // A proxied call's keyway JWT (on its outcome record) is found by jti as a token /token issued is.
    issued_jti: event.issued?.jti ?? event.proxy?.credential?.jti ?? null,
  };
}

export interface IndexMismatch {
  readonly column: keyof AuditIndex;
  readonly stored: unknown;
  readonly derived: unknown;
}

/** The first column whose stored value is not the one the event gives, or undefined when all agree. */
export function indexMismatch(event: AuditEvent, stored: Readonly<Record<string, unknown>>): IndexMismatch | undefined {
  const derived = auditIndex(event);
  const column = AUDIT_INDEX_COLUMNS.find((name) => stored[name] !== derived[name]);
  return column === undefined ? undefined : { column, stored: stored[column], derived: derived[column] };
}
