import { UPKEEP_FAILURES, type UpkeepFailure } from '../../core/audit/upkeep-failure.ts';
import type { HealthReport } from '../../core/policy/policy-health.ts';
import type { Counter, MetricsRegistry } from '../../features/metrics/registry.ts';

/**
 * How many upkeep intervals may pass without a round that succeeded before `/healthz` is degraded. A round that fails for
 * a passing cause (a write lock held past SQLite's busy timeout) is tried again at the next interval and costs nothing, and
 * the round under way when the bound is reached may end a little late; three intervals without one mean checkpoints or
 * retention have stopped until someone looks (the head may still be signed while pruning is refused).
 */
export const UPKEEP_OVERDUE_ROUNDS = 3;

/**
 * The leader's rounds of audit log upkeep as an operator watches them: each that did not finish counted by its class in
 * `/metrics`, how long ago the last one succeeded, and `/healthz` degraded once that is past UPKEEP_OVERDUE_ROUNDS intervals.
 */
export class AuditUpkeepRounds {
  readonly #now: () => number;
  readonly #overdueMs: number;
  readonly #failures: Counter<'reason'>;
  // Until a round succeeds, the process's start: the first round runs before it listens.
  #lastSuccess: number;
  #lastFailure: UpkeepFailure | undefined;

  constructor(registry: MetricsRegistry, options: { readonly now: () => number; readonly intervalSeconds: number }) {
    this.#now = options.now;
    this.#overdueMs = UPKEEP_OVERDUE_ROUNDS * options.intervalSeconds * 1000;
    this.#lastSuccess = options.now();
    this.#failures = registry.counter(
      'keyway_audit_upkeep_failures_total',
      `Rounds of audit log upkeep (checkpoint, pruning) that did not finish, by reason (${UPKEEP_FAILURES.join(', ')}); the log line says what.`,
      ['reason'],
    );
    // Known series start at 0, so a rate() or increase() over them has a beginning.
    for (const reason of UPKEEP_FAILURES) this.#failures.inc({ reason }, 0);
    registry.gauge(
      'keyway_audit_upkeep_since_success_seconds',
      `How long ago the last round of audit log upkeep succeeded (since the process started, before one has); past ${UPKEEP_OVERDUE_ROUNDS} upkeep intervals /healthz is degraded.`,
      [],
      () => [[{}, this.#sinceSuccessSeconds()]],
    );
  }

  succeeded(): void {
    this.#lastSuccess = this.#now();
    this.#lastFailure = undefined;
  }

  failed(reason: UpkeepFailure): void {
    this.#lastFailure = reason;
    this.#failures.inc({ reason });
  }

  /** `report`, `degraded` once no round has succeeded for UPKEEP_OVERDUE_ROUNDS intervals, saying how long and why the last one failed. */
  health(report: HealthReport): HealthReport {
    if (this.#now() - this.#lastSuccess <= this.#overdueMs) return report;
    const audit_upkeep = {
      since_success_seconds: this.#sinceSuccessSeconds(),
      ...(this.#lastFailure === undefined ? {} : { last_failure: this.#lastFailure }),
    };
    return { ...report, status: 'degraded', audit_upkeep };
  }

  #sinceSuccessSeconds(): number {
    return Math.max(0, Math.floor((this.#now() - this.#lastSuccess) / 1000));
  }
}
