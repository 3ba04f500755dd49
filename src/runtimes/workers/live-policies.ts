import type { Logger } from '../../core/log.ts';
import { loadPolicies, type PolicyFile, type PolicyLoadOptions } from '../../core/policy/load-policies.ts';
import { reloadProblems, type PolicyReloadStatus } from '../../core/policy/policy-reload-status.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import { STORED_LIVE_SET } from '../../core/policy/live-policy-attestation.ts';
import type { LivePolicySet } from '../../features/github/repository-policies/live-policy-set.ts';
import type { KeywayState } from './keyway-state.ts';

/**
 * The policy set a Worker isolate serves when a policy repository is configured. The live set
 * is kept in the KeywayState Durable Object, which is strongly consistent: an isolate asks it for
 * the current one at most once per `checkSeconds` (KEYWAY_GITHUB_POLICY_CHECK_SECONDS), and
 * before a request once its last answer is older (files only travel when the stored set changed), so
 * a push's switch reaches every isolate within that bound without one call per request to the
 * one object. Workers KV would be cheaper to read but is eventually consistent: an isolate could
 * go on serving a set a push replaced (or withdrew access from) for a minute or more.
 */
export class WorkerLivePolicies {
  readonly #state: () => DurableObjectStub<KeywayState>;
  readonly #options: PolicyLoadOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #bundled: PolicySet;
  readonly #checkMs: number;
  /** Which save of the stored set this isolate serves (`liveSetStamp`); '' for none: the bundled set. */
  #stamp = '';
  #set: PolicySet;
  #lastSwitch: PolicyReloadStatus | undefined;
  /** Why the stored set is not served, while it is not: reported as the last switch. */
  #refused: PolicyReloadStatus | undefined;
  /** When the last check whose answer this isolate serves was asked. */
  #checkedAt = Number.NEGATIVE_INFINITY;
  /** Checks asked (and switches made) so far, and the latest of them this isolate serves: an answer to an earlier one is stale. */
  #asks = 0;
  #applied = 0;

  /** `bundled`: the set built into the Worker, serving until the first push, and while the stored set is one the master key does not vouch for. */
  constructor(
    state: () => DurableObjectStub<KeywayState>,
    bundled: PolicySet,
    options: PolicyLoadOptions,
    log: Logger,
    now: () => number,
    checkSeconds: number,
  ) {
    this.#state = state;
    this.#bundled = bundled;
    this.#set = bundled;
    this.#options = options;
    this.#log = log;
    this.#now = now;
    this.#checkMs = checkSeconds * 1000;
  }

  get current(): PolicySet {
    return this.#set;
  }

  get lastSwitch(): PolicyReloadStatus | undefined {
    return this.#refused ?? this.#lastSwitch;
  }

  /** Whether the last check this isolate serves by is `checkSeconds` old at `at`: the next request asks KeywayState again. */
  isStale(at: number): boolean {
    return at - this.#checkedAt >= this.#checkMs;
  }

  /**
   * Catches up with the live set when this isolate's last check is `checkSeconds` old. Requests
   * that find it stale at once each ask (a promise of one request's I/O is not another's to await).
   */
  async refreshIfStale(): Promise<void> {
    const askedAt = this.#now();
    if (!this.isStale(askedAt)) return;
    await this.#refresh();
    this.#checkedAt = Math.max(this.#checkedAt, askedAt);
  }

  /** Catches up with the live set in the Durable Object. */
  async #refresh(): Promise<void> {
    const asked = ++this.#asks;
    const state = await this.#state().livePolicyState(this.#stamp);
    // A check asked before a newer one (or a switch) but answered after it must not take this isolate back. By the order
    // asked, not by version: a state object recovered to an earlier point holds a lower version, which is the one to serve.
    if (asked < this.#applied) return;
    this.#applied = asked;
    this.#lastSwitch = state.lastSwitch;
    if (state.stamp === this.#stamp) return;
    this.#stamp = state.stamp;
    if (state.refused !== undefined) {
      const problems = [`${state.refused}. It is not served: the bundled policies serve until the next push to the policy repository replaces it`];
      this.#log.error('stored live policy set not served: the master key does not vouch for it', { problems });
      this.#set = this.#bundled;
      this.#refused = { ok: false, at: new Date(this.#now()).toISOString(), policies: this.#set.policies.length, source: STORED_LIVE_SET, problems };
      return;
    }
    this.#refused = undefined;
    // None stored (the state object recovered to before the first push): the bundled set, as a new isolate serves.
    if (state.files === undefined) {
      this.#set = this.#bundled;
      return;
    }
    try {
      this.#set = loadPolicies(state.files, this.#options);
    } catch (error) {
      // It loaded when it was saved; only this Worker's own settings (a lower KEYWAY_MAX_TTL_SECONDS) or version (a stricter
      // loader, an isolate of the version before a rolling deploy) can make it fail here. Neither the bundled set nor the one
      // served before may stand in for it: either could grant what the push took away. So none serves, as a Node broker
      // does not start, until a push this Worker can load; health says why.
      const problems = [
        ...reloadProblems(error),
        "The stored live set does not load with this Worker's settings or version: no policy serves until a push to the policy repository that loads",
      ];
      this.#log.error("stored live policy set not served: it does not load with this Worker's settings or version; no policy serves", { problems });
      this.#set = loadPolicies([], this.#options);
      this.#refused = { ok: false, at: new Date(this.#now()).toISOString(), policies: 0, source: STORED_LIVE_SET, problems };
    }
  }

  /** The port the webhook handlers switch through. */
  get live(): LivePolicySet {
    const record = async (status: PolicyReloadStatus): Promise<PolicyReloadStatus> => {
      await this.#state().recordPolicySwitch(status);
      this.#lastSwitch = status;
      return status;
    };
    const at = (): string => new Date(this.#now()).toISOString();
    return {
      adopt: async (files: readonly PolicyFile[], source: string) => {
        let set: PolicySet;
        try {
          set = loadPolicies(files, this.#options);
        } catch (error) {
          const problems = reloadProblems(error);
          this.#log.error('policies not switched: the pushed set does not load, so the previous set keeps serving', { source, problems });
          return record({ ok: false, at: at(), policies: this.#set.policies.length, source, problems });
        }
        this.#stamp = await this.#state().saveLivePolicySet(files, source, this.#now());
        this.#applied = ++this.#asks;
        this.#set = set;
        this.#refused = undefined;
        this.#log.info('policies switched', { source, policies: set.policies.length });
        return record({ ok: true, at: at(), policies: set.policies.length, source });
      },
      refuse: async (problem: string, source: string) => record({ ok: false, at: at(), policies: this.#set.policies.length, source, problems: [problem] }),
      lastSwitch: async () => (await this.#state().livePolicyState(this.#stamp)).lastSwitch,
    };
  }
}
