import type { PolicyFile } from '../../../core/policy/load-policies.ts';
import type { PolicyReloadStatus } from '../../../core/policy/policy-reload-status.ts';

/**
 * The live policy set, as a push to the policy repository replaces it. Node: the broker's
 * ReloadablePolicies, saved in the SQLite file of the data directory. Workers: the KeywayState
 * Durable Object, which every isolate asks for the current version.
 */
export interface LivePolicySet {
  /**
   * Makes `files` the live set, in one step and durably, if they load as the broker loads
   * policies; otherwise the set serving now stays. Either way the outcome is kept for
   * `/v1/health` (and `/healthz` as degraded) and the next review.
   */
  adopt(files: readonly PolicyFile[], source: string): Promise<PolicyReloadStatus>;
  /** Records that a new set could not even be fetched: the set serving now stays. */
  refuse(problem: string, source: string): Promise<PolicyReloadStatus>;
  /** The last attempt to switch, if any. */
  lastSwitch(): Promise<PolicyReloadStatus | undefined>;
}
