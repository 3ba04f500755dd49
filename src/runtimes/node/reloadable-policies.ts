import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../../core/log.ts';
import { reloadProblems, type PolicyReloadStatus } from '../../core/policy/policy-reload-status.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';

export type { PolicyReloadStatus };

const WATCH_DEBOUNCE_MS = 200;

/**
 * The policy set the Node broker serves, replaceable while it runs. A reload loads the whole
 * directory again; the new set replaces the old in one assignment, and only if it loads
 * cleanly. Otherwise the old set keeps serving and the problems are logged and kept for
 * `GET /v1/health`. Every exchange reads the set once, so none ever sees half of each.
 */
export class ReloadablePolicies {
  readonly #load: () => PolicySet;
  readonly #log: Logger;
  #current: PolicySet;
  #last: PolicyReloadStatus | undefined;

  /** Loads the first set; throws PolicyLoadError if it does not load (the broker does not start). */
  constructor(load: () => PolicySet, log: Logger) {
    this.#load = load;
    this.#log = log;
    this.#current = load();
  }

  get current(): PolicySet {
    return this.#current;
  }

  get lastReload(): PolicyReloadStatus | undefined {
    return this.#last;
  }

  reload(now: Date = new Date()): PolicyReloadStatus {
    return this.replace(this.#load, undefined, now);
  }

  /**
   * Replaces the set with what `load` returns, if it loads; `source` says where it came from
   * (`github push <sha>`). `commit` runs between a clean load and the switch (persisting the
   * new set): if it throws, nothing switches either.
   */
  replace(load: () => PolicySet, source?: string, now: Date = new Date(), commit?: () => void): PolicyReloadStatus {
    const from = source === undefined ? {} : { source };
    let next: PolicySet;
    try {
      next = load();
      commit?.();
    } catch (error) {
      const problems = reloadProblems(error);
      this.#last = { ok: false, at: now.toISOString(), policies: this.#current.policies.length, ...from, problems };
      this.#log.error('policies not reloaded: the new set does not load, so the previous set keeps serving', { ...from, problems });
      return this.#last;
    }
    this.#current = next;
    this.#last = { ok: true, at: now.toISOString(), policies: next.policies.length, ...from };
    this.#log.info('policies reloaded', { ...from, policies: next.policies.length, inactive_policies: next.inactive.length });
    return this.#last;
  }

  /** Records that a new set from `source` was refused before it could be loaded; the current set keeps serving. */
  refuse(
    problems: readonly string[],
    source: string,
    now: Date = new Date(),
    message = 'policies not reloaded: the new set could not be read, so the previous set keeps serving',
  ): PolicyReloadStatus {
    this.#last = { ok: false, at: now.toISOString(), policies: this.#current.policies.length, source, problems };
    this.#log.error(message, { source, problems });
    return this.#last;
  }

  /** Reloads after changes under `dir` settle. Returns the watcher, to close on shutdown. */
  watch(dir: string): FSWatcher {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watcher = watch(dir, { recursive: true }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.reload(), WATCH_DEBOUNCE_MS);
    });
    watcher.on('close', () => clearTimeout(timer));
    watcher.on('error', (error) => this.#log.error('policy directory watch failed; reload with SIGHUP', { error: error.message }));
    return watcher;
  }
}
