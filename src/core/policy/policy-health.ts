import type { UpkeepFailure } from '../audit/upkeep-failure.ts';
import type { PolicyReloadStatus } from './policy-reload-status.ts';
import type { PolicySet } from './policy-set.ts';

/**
 * The broker's health: its policy set's, `degraded` while the last attempt to replace the set (a
 * reload, a push) was refused and the previous set still serves; and on Node with several broker
 * processes, `degraded` too while no leader serves; and on Node, `degraded` while its audit writer has left a write
 * unanswered for long (`audit_writer`), or while no round of the leader's audit log upkeep has succeeded for long
 * (`audit_upkeep`). Anyone may read `status` (`GET /healthz`); the
 * rest names files, issuers and load problems, for operators only (`GET /v1/health`).
 */
export interface HealthReport {
  readonly status: 'ok' | 'degraded';
  readonly policies: number;
  readonly inactive_policies: number;
  readonly policy_reload?: PolicyReloadStatus;
  readonly leader?: LeaderHealth;
  /** On Node, only while its audit writer stalls: how long the oldest write it has not answered has waited. */
  readonly audit_writer?: { readonly waiting_seconds: number };
  /** On Node's leader, only while its audit log upkeep is overdue: how long ago a round last succeeded, and why the last one failed. */
  readonly audit_upkeep?: { readonly since_success_seconds: number; readonly last_failure?: UpkeepFailure };
}

/** Whether the leader of several broker processes serves; while none does, since when (ISO 8601) and why. */
export type LeaderHealth = { readonly serving: true } | { readonly serving: false; readonly since: string; readonly reason: string };

export function policyHealth(set: PolicySet, lastReload: PolicyReloadStatus | undefined): HealthReport {
  return {
    status: lastReload?.ok === false ? 'degraded' : 'ok',
    policies: set.policies.length,
    inactive_policies: set.inactive.length,
    ...(lastReload === undefined ? {} : { policy_reload: lastReload }),
  };
}
