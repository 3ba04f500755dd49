import { createWriteStream, existsSync } from 'node:fs';
import { once } from 'node:events';
import { CliError, type Command } from './command.ts';
import { FILTER_USAGE, openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';

const USAGE = `usage: keyway audit export [source] [filters] [--format ndjson|csv] [--output FILE]

Writes every matching audit event, oldest first, as NDJSON (one record a line, with its
chain link and index columns: what \`keyway audit verify\` and any JCS implementation can
check) or CSV.

${SOURCE_USAGE}

${FILTER_USAGE}
  --format F                ndjson (default) or csv
  --output FILE             write there instead of to standard output`;

export const auditExport: Command = {
  summary: 'export audit events as NDJSON or CSV',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, { format: { type: 'string', default: 'ndjson' }, output: { type: 'string' } });
    const format = values['format'];
    if (format !== 'ndjson' && format !== 'csv') throw new CliError('--format is ndjson or csv');
    if (values['json'] === true) throw new CliError('export writes NDJSON or CSV; --json does not apply');
    const output = values['output'];
    if (typeof output === 'string' && existsSync(output)) throw new CliError(`--output ${output} exists; an export never overwrites a file`);
    const source = openAuditSource(values);
    const out = typeof output === 'string' ? createWriteStream(output, { flags: 'wx' }) : process.stdout;
    try {
      for await (const chunk of source.export(params, format)) {
        if (!out.write(chunk)) await once(out, 'drain');
      }
      return 0;
    } finally {
      source.close();
      if (out !== process.stdout) await new Promise<void>((resolve) => out.end(() => resolve()));
    }
  },
};
