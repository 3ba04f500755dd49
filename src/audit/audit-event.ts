import type { Decision, Reason } from '../exchange/reasons.ts';

/**
 * One record per decision. Never holds a raw token: the subject token is known by its
 * SHA-256 and `jti`, the issued token by its `jti`. Field names are snake_case because
 * auditors read these records directly (exports, queries).
 */
export interface AuditEvent {
  /** ULID: sortable by time. */
  readonly id: string;
  /** ISO 8601, milliseconds. */
  readonly time: string;
  readonly decision: Decision;
  readonly reason: Reason;
  /** Operator-facing detail of a refusal. */
  readonly detail?: string;
  readonly request: {
    readonly id: string;
    readonly client_ip?: string;
    readonly user_agent?: string;
    readonly audience?: readonly string[];
    readonly scope?: readonly string[];
  };
  readonly subject_token?: {
    readonly sha256: string;
    readonly jti?: string;
    /** `iss` and `sub` as the token claimed them, recorded whether or not it verified. */
    readonly claimed_iss?: string;
    readonly claimed_sub?: string;
  };
  /** Set only when the subject token verified. */
  readonly issuer?: string;
  readonly subject?: string;
  /** The verified claims policies look at (and the issuer preset's audit claims). */
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly policy?: {
    readonly granted_by?: string;
    readonly candidates: readonly string[];
    readonly matched: readonly string[];
    readonly denied_by: readonly string[];
    readonly audit_mode: readonly { readonly policy: string; readonly would: 'grant' | 'deny' }[];
  };
  readonly issued?: {
    readonly jti: string;
    readonly sub: string;
    readonly aud: readonly string[];
    readonly scope: readonly string[];
    /** Seconds since the epoch. */
    readonly exp: number;
  };
}

/** Where audit events go. An append that resolves is durable; one that rejects means no token. */
export interface AuditStore {
  append(event: AuditEvent): Promise<void>;
  get(id: string): Promise<AuditEvent | undefined>;
}
