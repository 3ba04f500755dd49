import type { PolicyReloadStatus } from './policy-reload-status.ts';
import type { PolicySet } from './policy-set.ts';

/**
 * The broker's health, which is the health of its policy set: `degraded` while the last attempt
 * to replace the set (a reload, a push) was refused and the previous set still serves. Anyone
 * may read `status` (`GET /healthz`); the rest names files, issuers and load problems, for
 * operators only (`GET /v1/health`).
 */
export interface HealthReport {
  readonly status: 'ok' | 'degraded';
  readonly policies: number;
  readonly inactive_policies: number;
  readonly policy_reload?: PolicyReloadStatus;
}

export function policyHealth(set: PolicySet, lastReload: PolicyReloadStatus | undefined): HealthReport {
  return {
    status: lastReload?.ok === false ? 'degraded' : 'ok',
    policies: set.policies.length,
    inactive_policies: set.inactive.length,
    ...(lastReload === undefined ? {} : { policy_reload: lastReload }),
  };
}
