import { DECISIONS } from '../core/audit/audit-query.ts';
import type { Command } from './command.ts';
import { FILTER_USAGE, openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { formatTable } from './table.ts';
import { inert } from '../core/inert-text.ts';

const USAGE = `usage: keyway audit stats [source] [filters] [--bucket minute|hour|day] [--json]

Counts exchanges by decision over time buckets (default: the last 24 hours by hour, or the
last 30 days by day), and by policy and repository over the window. The table leaves out
empty buckets; --json has them all.

${SOURCE_USAGE}

${FILTER_USAGE}
  --bucket B                minute, hour (default) or day`;

export const auditStats: Command = {
  summary: 'count audit events by decision, policy and repository over time',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, { bucket: { type: 'string' } });
    if (typeof values['bucket'] === 'string') params.set('bucket', values['bucket']);
    const source = await openAuditSource(values);
    try {
      const stats = await source.stats(params);
      if (values['json'] === true) {
        process.stdout.write(`${JSON.stringify(stats)}\n`);
        return 0;
      }
      const counts = (row: Record<string, number>) => DECISIONS.map((decision) => row[decision]);
      const header = [...DECISIONS];
      const sections = [
        // The broker's words with --url, shown inert as the tables' cells are.
        inert(`${stats.since} to ${stats.until}, per ${stats.bucket}`),
        formatTable(['', ...header], [['total', ...counts(stats.totals)]]),
        formatTable(
          [stats.bucket, ...header],
          stats.series.filter((bucket) => DECISIONS.some((decision) => bucket.counts[decision] > 0)).map((bucket) => [bucket.start, ...counts(bucket.counts)]),
        ),
        formatTable(
          ['policy', ...header],
          stats.by_policy.map((row) => [row.policy ?? '(none)', ...counts(row.counts)]),
        ),
        formatTable(
          ['repository', ...header],
          stats.by_repository.map((row) => [row.repository ?? '(none)', ...counts(row.counts)]),
        ),
      ];
      process.stdout.write(`${sections.join('\n\n')}\n`);
      return 0;
    } finally {
      source.close();
    }
  },
};
