import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../src/features/metrics/registry.ts';
import { parsePrometheusText } from '../support/prometheus-text.ts';

describe('the metrics registry', () => {
  it('writes counters and cumulative histograms in the Prometheus text format, escaping label values', () => {
    const registry = new MetricsRegistry();
    const counter = registry.counter('things_total', 'Things,\nby kind.', ['kind']);
    const histogram = registry.histogram('wait_seconds', 'Waits.', ['op'], [0.1, 1]);
    counter.inc({ kind: 'a "quoted" \\ kind\nwith a newline' }, 2);
    counter.inc({ kind: 'plain' });
    counter.inc({ kind: 'plain' });
    for (const value of [0.05, 0.5, 0.5, 3]) histogram.observe({ op: 'x' }, value);

    const text = registry.exposition();
    expect(text).toContain('# HELP things_total Things,\\nby kind.\n# TYPE things_total counter\n');
    expect(text).toContain('things_total{kind="a \\"quoted\\" \\\\ kind\\nwith a newline"} 2\n');
    const samples = parsePrometheusText(text);
    expect(samples.get('things_total{kind="plain"}')).toBe(2);
    expect(samples.get('wait_seconds_bucket{op="x",le="0.1"}')).toBe(1);
    expect(samples.get('wait_seconds_bucket{op="x",le="1"}')).toBe(3);
    expect(samples.get('wait_seconds_bucket{op="x",le="+Inf"}')).toBe(4);
    expect(samples.get('wait_seconds_count{op="x"}')).toBe(4);
    expect(samples.get('wait_seconds_sum{op="x"}')).toBeCloseTo(4.05);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('refuses a metric registered twice', () => {
    const registry = new MetricsRegistry();
    registry.counter('once_total', 'Once.');
    expect(() => registry.counter('once_total', 'Again.')).toThrow(/twice/);
  });
});
