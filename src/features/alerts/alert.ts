/** The anomaly rules, each evaluated as events are written (see evaluate-alerts.ts). */
export const ALERT_RULES = [
  'denial_burst_identity',
  'denial_burst_address',
  'subject_token_replayed',
  'first_policy_exchange',
  'new_network',
  'retired_policy',
  'stale_grant',
  'unverified_limit_reached',
] as const;

export type AlertRule = (typeof ALERT_RULES)[number];

/** `none`: no webhook is configured; `failed`: every attempt failed, or the delivery queue was full. */
export type AlertDelivery = 'none' | 'pending' | 'delivered' | 'failed';

export interface Alert {
  /** ULID. */
  readonly id: string;
  /** ISO 8601. */
  readonly time: string;
  readonly rule: AlertRule;
  /** One line for people. */
  readonly summary: string;
  /** The audit event that raised it. */
  readonly event_id: string;
  readonly details: Readonly<Record<string, string | number>>;
}

export interface StoredAlert extends Alert {
  readonly delivery: AlertDelivery;
  readonly attempts: number;
}

/** An alert before it is stored. `dedupe`: a second alert with the same key is never raised. */
export interface AlertDraft extends Alert {
  readonly dedupe?: string;
}
