import type { AuditEvent, ChainLink } from '../../core/audit/audit-event.ts';
import { replacedReason } from '../../core/limits/unverified-record-budget.ts';
import { PRUNE_BATCH, retentionStart } from '../../core/audit/maintain-audit-log.ts';
import type { AlertDelivery, AlertDraft, StoredAlert } from './alert.ts';
import { accountOf, type VerifiedCaller } from '../../core/claims/caller-account.ts';
import { canonicalText } from '../../core/claims/claim-value.ts';
import { PRESETS } from '../../core/verify/presets.ts';

/**
 * Whether the record is of a refused operator credential (`/v1/*`, `/introspect`, an operator's `/revoke`, the `/audit`
 * page), the one past a limit that replaced its reason (recordAsLimited) too. The rules see it as a refusal from its
 * client (`denial_burst_address`, with the exchanges' refusals), nothing more: the identity it claims is the sender's
 * choice and names no exchange, and the token is no subject token.
 */
export function isOperatorRefusal(event: AuditEvent): boolean {
  const reason = replacedReason(event) ?? event.reason;
  return reason === 'operator_token_invalid' || reason === 'operator_scope_missing';
}

/**
 * The caller a verified record's alert history is kept under (new networks, the policy that last granted it, its denial
 * bursts): its issuer, its account as the rate limits charge it (accountOf: the first tenant claim of its issuer's kind,
 * which the record keeps among its audit claims, else its subject), and its subject. Issuer and `sub` alone are not one
 * caller: a customised GitHub `sub` (a shared reusable workflow's `job_workflow_ref`), or an issuer whose `sub` is not
 * unique per tenant, gives two accounts one subject, and one's history must neither hide nor add to the other's. The
 * subject stays in the key, since the rules are about one identity, and on Workers the history is in the shard its issuer
 * and subject pick (auditShardOf), which holds every account's records of that subject. Undefined for a token that did
 * not verify: what it claims names no account.
 */
export function recordedCaller(event: AuditEvent): VerifiedCaller | undefined {
  const { issuer, subject } = event;
  if (issuer === undefined || subject === undefined) return undefined;
  const [claim] = (event.issuer_kind === undefined ? undefined : PRESETS.get(event.issuer_kind))?.tenantClaims ?? [];
  // Kept under the name the preset reads it by, a JSON Pointer too (PolicySet.recordedClaims).
  const tenant = claim === undefined || event.claims === undefined || !Object.hasOwn(event.claims, claim) ? undefined : canonicalText(event.claims[claim]);
  return { ...accountOf(issuer, tenant, subject), subject };
}

/** What the log says about an event's neighbourhood: the facts the alert rules decide on. */
export interface AlertObservation {
  /**
   * `denied` records of this identity (recordedCaller; of a token that did not verify, the issuer and subject it claimed)
   * since the window start, this one included.
   */
  readonly identityDenials: number;
  /**
   * `denied` and `malformed` records from this client since the window start, this one included: its address as the
   * per-client rate limit counts it (clientNetwork: an IPv4 address, an IPv6 address's /64). Refused exchanges and
   * refused operator credentials (isOperatorRefusal) both.
   */
  readonly addressDenials: number;
  /** Earlier records with the same subject-token SHA-256, but for housekeeping that only names it (HOUSEKEEPING_REASONS). */
  readonly earlierPresentations: number;
  /** Whether one of those earlier presentations was granted. */
  readonly earlierGrant: boolean;
  /** The policies that granted this record (for a token map, each owner's) and had never granted before. */
  readonly firstForPolicies: readonly string[];
  /** A grant from a network this caller (recordedCaller) had never been granted from, having been granted from another. */
  readonly newNetwork: boolean;
  /** The policy that last granted this (verified) caller (recordedCaller) before this record, if any. */
  readonly lastGrantedPolicy?: string;
}

export interface ObserveOptions {
  /** Milliseconds since the epoch: where the burst window starts. */
  readonly windowStart: number;
  /** The client's network (`203.0.113.0/24`), when its address is known. */
  readonly network?: string;
}

/** Alert state beside the audit log (same database): rule memory, raised alerts, webhook delivery. */
export interface AlertStore {
  /**
   * Reads the facts for `event` and remembers what it has now seen (first policy use, networks, the policy that granted its
   * caller); of an operator refusal, its client's refusals only.
   */
  observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation>;
  /** Stores the drafts whose dedupe key is new; returns those stored. */
  addAlerts(drafts: readonly AlertDraft[], delivery: AlertDelivery): Promise<StoredAlert[]>;
  setDelivery(id: string, delivery: AlertDelivery, attempts: number): Promise<void>;
  /** Newest first. */
  alerts(limit: number): Promise<StoredAlert[]>;
  /** Deletes at most `limit` alerts raised before `before` (ms since the epoch), the oldest first; returns how many. */
  pruneAlerts(before: number, limit: number): Promise<number>;
}

/**
 * Drops the alerts raised before the audit log's retention window (KEYWAY_AUDIT_RETENTION_DAYS; 0 keeps them all), at most
 * PRUNE_BATCH a round, as upkeep drops the records they are about. Anyone raises denial bursts at will (a made-up subject
 * per forged token): kept for ever, their alerts would grow the store whatever the retention.
 */
export function pruneAlertsPastRetention(store: Pick<AlertStore, 'pruneAlerts'>, now: number, retentionDays: number): Promise<number> {
  return retentionDays > 0 ? store.pruneAlerts(retentionStart(now, retentionDays), PRUNE_BATCH) : Promise.resolve(0);
}
