import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log.ts';
import { PolicyLoadError } from '../policy/load-policies.ts';
import type { PolicySet } from '../policy/policy-set.ts';

/** The outcome of the last reload, for the log and `/healthz`. */
export interface PolicyReloadStatus {
  readonly ok: boolean;
  /** ISO 8601. */
  readonly at: string;
  /** Active policies in the set now serving. */
  readonly policies: number;
  /** Why the new set was refused, `file:line:column message` each (at most 20); the old set still serves. */
  readonly problems?: readonly string[];
}

const MAX_REPORTED_PROBLEMS = 20;
const WATCH_DEBOUNCE_MS = 200;

/**
 * The policy set the Node broker serves, replaceable while it runs. A reload loads the whole
 * directory again; the new set replaces the old in one assignment, and only if it loads
 * cleanly. Otherwise the old set keeps serving and the problems are logged and kept for
 * `/healthz`. Every exchange reads the set once, so none ever sees half of each.
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
    let next: PolicySet;
    try {
      next = this.#load();
    } catch (error) {
      const problems =
        error instanceof PolicyLoadError
          ? error.problems.map((problem) => `${problem.file}:${problem.line}:${problem.column} ${problem.message}`)
          : [error instanceof Error ? `${error.name}: ${error.message}` : String(error)];
      this.#last = { ok: false, at: now.toISOString(), policies: this.#current.policies.length, problems: problems.slice(0, MAX_REPORTED_PROBLEMS) };
      this.#log.error('policies not reloaded: the new set does not load, so the previous set keeps serving', { problems });
      return this.#last;
    }
    this.#current = next;
    this.#last = { ok: true, at: now.toISOString(), policies: next.policies.length };
    this.#log.info('policies reloaded', { policies: next.policies.length, inactive_policies: next.inactive.length });
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
