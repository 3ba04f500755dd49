import { CliError, type Command } from './command.ts';
import { FILTER_USAGE, openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { formatTable } from './table.ts';
import { inertLines } from './terminal-text.ts';

const USAGE = `usage: keyway audit query [source] [filters] [--limit N] [--cursor C] [--json]

Lists audit events, newest first: a table for people, or with --json the API's page
({"events": [...], "next_cursor": "..."}) for scripts.

${SOURCE_USAGE}

${FILTER_USAGE}
  --limit N                 events per page, 1 to 500 (default 50)
  --cursor C                the next page, as printed after the previous one`;

export const auditQuery: Command = {
  summary: 'list audit events matching filters',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, { limit: { type: 'string' }, cursor: { type: 'string' } });
    for (const name of ['limit', 'cursor'] as const) if (typeof values[name] === 'string') params.set(name, values[name]);
    const source = await openAuditSource(values);
    try {
      const page = await source.query(params);
      if (values['json'] === true) {
        process.stdout.write(`${JSON.stringify(page)}\n`);
        return 0;
      }
      const rows = page.events.map((event) => [
        event.time,
        event.decision,
        event.reason,
        event.subject ?? (event.subject_token?.claimed_sub === undefined ? '' : `(claimed) ${event.subject_token.claimed_sub}`),
        event.claims?.['repository'] ?? event.claims?.['project_path'],
        event.policy?.granted_by ?? event.policy?.denied_by[0],
        event.id,
      ]);
      process.stdout.write(`${formatTable(['time', 'decision', 'reason', 'subject', 'repository', 'policy', 'id'], rows)}\n`);
      // The cursor is the broker's to choose (--url): shown inert, as the table's cells are.
      process.stdout.write(
        page.events.length === 0
          ? 'no events match\n'
          : inertLines([`${page.events.length} events${page.next_cursor === undefined ? '' : `; more with --cursor ${page.next_cursor}`}`]),
      );
      return 0;
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw new CliError(`query failed: ${(error as Error).message}`, 1);
    } finally {
      source.close();
    }
  },
};
