/** Work the broker started that a shutdown lets finish before it closes the database: timer rounds, tasks after an answer. */
export class RunningWork {
  readonly #running = new Map<Promise<void>, string>();

  /** Keeps `task` in view, under `kind`, until it settles; returns it as it is (its outcome stays the caller's). */
  track<T>(kind: string, task: Promise<T>): Promise<T> {
    const settled = task.then(
      () => undefined,
      () => undefined,
    );
    this.#running.set(settled, kind);
    void settled.then(() => this.#running.delete(settled));
    return task;
  }

  /** Resolves when nothing is running, including work started while waiting. */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running.keys());
  }

  /** How many of each kind are running, e.g. `{ alert_rules: 2 }`. */
  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const kind of this.#running.values()) counts[kind] = (counts[kind] ?? 0) + 1;
    return counts;
  }
}
