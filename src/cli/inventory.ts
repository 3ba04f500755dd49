import { INVENTORY_CSV_HEADER, inventoryCsvRow } from '../core/audit/inventory-csv.ts';
import { INVENTORY_SORTS, type Count } from '../core/audit/inventory.ts';
import { ndjsonLine } from '../core/audit/ndjson-line.ts';
import { openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { CliError, type Command } from './command.ts';
import { formatTable } from './table.ts';
import { inert } from '../core/inert-text.ts';

const USAGE = `usage: keyway inventory [source] [filters] [--sort FIELD] [--order asc|desc] [--format table|json|csv|ndjson]

Every CI identity seen in the window (default: the last 30 days): issuer, tenant (owner id,
namespace id or organisation), and repository or else subject; for each, the policies that
granted it, the scopes, audiences and GitHub permissions it was granted (with counts), first and
last seen, and its refusals. No token, token hash or jti appears in it.

${SOURCE_USAGE}

filters:
  --since TIME              RFC 3339 time, a date, or a span back from now (default 30d)
  --until TIME              exclusive (default now)
  --issuer URL  --repository OWNER/NAME  --policy ID
  --decision D[,D]  --reason R[,R]
  --sort FIELD              ${INVENTORY_SORTS.join(', ')} (default last_seen)
  --order asc|desc          (default desc; asc for identity)
  --format F                table (default), json, csv or ndjson (--json is --format json)
Exit status 0; 2 for a malformed window, filter or option; 1 when the log cannot be read.`;

const FORMATS = ['table', 'json', 'csv', 'ndjson'] as const;
const counts = (list: readonly Count[]) => list.map((entry) => `${entry.value}×${entry.count}`).join(' ');

export const inventory: Command = {
  summary: 'every CI identity seen in a window, with what it was granted and refused',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, { sort: { type: 'string' }, order: { type: 'string' }, format: { type: 'string' } });
    for (const name of ['sort', 'order'] as const) {
      const value = values[name];
      if (typeof value === 'string') params.set(name, value);
    }
    const format = values['json'] === true ? 'json' : ((values['format'] as string | undefined) ?? 'table');
    if (!(FORMATS as readonly string[]).includes(format)) throw new CliError(`--format is one of ${FORMATS.join(', ')}`);
    const source = await openAuditSource(values);
    try {
      const answer = await source.inventory(params);
      if (format === 'json') process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      else if (format === 'csv') process.stdout.write(INVENTORY_CSV_HEADER + answer.identities.map(inventoryCsvRow).join(''));
      else if (format === 'ndjson') process.stdout.write(answer.identities.map(ndjsonLine).join(''));
      else {
        const rows = answer.identities.map((identity) => [
          identity.repository ?? identity.subject ?? '(none)',
          identity.tenant ?? '',
          identity.grants,
          identity.denials,
          identity.last_seen,
          counts(identity.policies),
          counts([...identity.scopes, ...identity.github_permissions]),
        ]);
        process.stdout.write(
          // The window is the broker's to say with --url: shown inert, as the table's cells are.
          `${inert(`${answer.since} to ${answer.until}`)}: ${answer.identities.length} identit${answer.identities.length === 1 ? 'y' : 'ies'}\n\n` +
            `${formatTable(['identity', 'tenant', 'grants', 'denials', 'last seen', 'policies', 'granted'], rows)}\n`,
        );
      }
      return 0;
    } finally {
      source.close();
    }
  },
};
