import type { AuditStats } from '../../core/audit/audit-query.ts';
import { DECISIONS } from '../../core/audit/audit-query.ts';

const WIDTH = 960;
const HEIGHT = 200;
const LEFT = 40;
const BOTTOM = 24;
const COLORS = { granted: '#2e7d32', denied: '#c62828', malformed: '#ef6c00', error: '#6a1b9a' } as const;

/** Exchanges per time bucket as stacked bars, one colour per decision: inline SVG, no script. */
export function DecisionsChart(props: { stats: AuditStats }) {
  const { series } = props.stats;
  const totals = series.map((bucket) => DECISIONS.reduce((sum, decision) => sum + bucket.counts[decision], 0));
  const max = Math.max(1, ...totals);
  const plotWidth = WIDTH - LEFT;
  const plotHeight = HEIGHT - BOTTOM;
  const barWidth = plotWidth / Math.max(1, series.length);
  const scale = (count: number) => (count / max) * (plotHeight - 8);
  const labelEvery = Math.max(1, Math.ceil(series.length / 8));
  return (
    <figure>
      <svg class="chart" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`exchanges per ${props.stats.bucket} by decision`} data-testid="chart">
        <line x1={LEFT} y1={plotHeight} x2={WIDTH} y2={plotHeight} stroke="#999" />
        <text x={LEFT - 6} y={12} text-anchor="end" font-size="11" fill="#555">
          {max}
        </text>
        <text x={LEFT - 6} y={plotHeight} text-anchor="end" font-size="11" fill="#555">
          0
        </text>
        {series.map((bucket, index) => {
          let y = plotHeight;
          const x = LEFT + index * barWidth;
          return (
            <g>
              {DECISIONS.filter((decision) => bucket.counts[decision] > 0).map((decision) => {
                const height = scale(bucket.counts[decision]);
                y -= height;
                return (
                  <rect
                    x={x + 1}
                    y={y}
                    width={Math.max(1, barWidth - 2)}
                    height={height}
                    fill={COLORS[decision]}
                    data-decision={decision}
                    data-count={bucket.counts[decision]}
                    data-start={bucket.start}
                  >
                    <title>{`${bucket.start}: ${bucket.counts[decision]} ${decision}`}</title>
                  </rect>
                );
              })}
              {index % labelEvery === 0 ? (
                <text x={x} y={HEIGHT - 6} font-size="11" fill="#555">
                  {props.stats.bucket === 'day' ? bucket.start.slice(5, 10) : bucket.start.slice(11, 16)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <figcaption class="legend">
        {DECISIONS.map((decision) => (
          <span>
            <i class={`swatch swatch-${decision}`}></i>
            {decision} {props.stats.totals[decision]}
          </span>
        ))}{' '}
        — per {props.stats.bucket}, {props.stats.since} to {props.stats.until}
      </figcaption>
    </figure>
  );
}
