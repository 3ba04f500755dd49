/**
 * A small metrics registry and its Prometheus text exposition (format 0.0.4): counters and
 * histograms with labels, and gauges read when scraped, nothing else. Runtime-neutral; the Node broker serves it at /metrics.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type LabelValues<L extends string> = Readonly<Record<L, string>>;

interface Metric {
  expose(): string;
}

abstract class LabelledMetric<L extends string, S> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #type: string;
  readonly #labelNames: readonly L[];
  readonly #series = new Map<string, { labels: string; state: S }>();

  constructor(name: string, help: string, type: string, labelNames: readonly L[]) {
    this.name = name;
    this.#help = help;
    this.#type = type;
    this.#labelNames = labelNames;
  }

  protected series(labels: LabelValues<L>): S {
    const values = this.#labelNames.map((name) => labels[name]);
    const key = JSON.stringify(values);
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { labels: this.#labelNames.map((name, index) => `${name}="${escapeLabel(values[index] ?? '')}"`).join(','), state: this.initial() };
      this.#series.set(key, series);
    }
    return series.state;
  }

  protected abstract initial(): S;
  protected abstract lines(labels: string, state: S): string[];

  expose(): string {
    const lines = [`# HELP ${this.name} ${this.#help.replaceAll('\\', '\\\\').replaceAll('\n', '\\n')}`, `# TYPE ${this.name} ${this.#type}`];
    for (const { labels, state } of this.#series.values()) lines.push(...this.lines(labels, state));
    return lines.join('\n');
  }
}

export class Counter<L extends string = never> extends LabelledMetric<L, { value: number }> {
  inc(labels: LabelValues<L>, by = 1): void {
    this.series(labels).value += by;
  }

  protected initial() {
    return { value: 0 };
  }

  protected lines(labels: string, state: { value: number }): string[] {
    return [`${this.name}${braces(labels)} ${formatNumber(state.value)}`];
  }
}

interface HistogramState {
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends LabelledMetric<L, HistogramState> {
  readonly #buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(name, help, 'histogram', labelNames);
    this.#buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: LabelValues<L>, value: number): void {
    const state = this.series(labels);
    const index = this.#buckets.findIndex((bound) => value <= bound);
    if (index >= 0) state.counts[index] = (state.counts[index] ?? 0) + 1;
    state.sum += value;
    state.count += 1;
  }

  protected initial(): HistogramState {
    return { counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
  }

  protected lines(labels: string, state: HistogramState): string[] {
    const prefix = labels === '' ? '' : `${labels},`;
    let cumulative = 0;
    const lines = this.#buckets.map((bound, index) => {
      cumulative += state.counts[index] ?? 0;
      return `${this.name}_bucket{${prefix}le="${formatNumber(bound)}"} ${cumulative}`;
    });
    lines.push(`${this.name}_bucket{${prefix}le="+Inf"} ${state.count}`);
    lines.push(`${this.name}_sum${braces(labels)} ${formatNumber(state.sum)}`, `${this.name}_count${braces(labels)} ${state.count}`);
    return lines;
  }
}

/** A gauge whose series are read from `collect` at each scrape: a value that lives elsewhere (an App's rate limit). */
export class CollectedGauge<L extends string = never> implements Metric {
  readonly #name: string;
  readonly #help: string;
  readonly #labelNames: readonly L[];
  readonly #collect: () => Iterable<readonly [LabelValues<L>, number]>;

  constructor(name: string, help: string, labelNames: readonly L[], collect: () => Iterable<readonly [LabelValues<L>, number]>) {
    this.#name = name;
    this.#help = help;
    this.#labelNames = labelNames;
    this.#collect = collect;
  }

  expose(): string {
    const lines = [`# HELP ${this.#name} ${this.#help}`, `# TYPE ${this.#name} gauge`];
    for (const [labels, value] of this.#collect()) {
      const written = this.#labelNames.map((name) => `${name}="${escapeLabel(labels[name])}"`).join(',');
      lines.push(`${this.#name}${braces(written)} ${formatNumber(value)}`);
    }
    return lines.join('\n');
  }
}

export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.#register(name, new Counter<L>(name, help, 'counter', labelNames));
  }

  histogram<L extends string = never>(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]): Histogram<L> {
    return this.#register(name, new Histogram<L>(name, help, labelNames, buckets));
  }

  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[],
    collect: () => Iterable<readonly [LabelValues<L>, number]>,
  ): CollectedGauge<L> {
    return this.#register(name, new CollectedGauge<L>(name, help, labelNames, collect));
  }

  /** Every metric in the Prometheus text format, in registration order. */
  exposition(): string {
    return `${[...this.#metrics.values()].map((metric) => metric.expose()).join('\n')}\n`;
  }

  #register<M extends Metric>(name: string, metric: M): M {
    if (this.#metrics.has(name)) throw new Error(`metric ${name} is registered twice`);
    this.#metrics.set(name, metric);
    return metric;
  }
}

function braces(labels: string): string {
  return labels === '' ? '' : `{${labels}}`;
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function formatNumber(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
