import { createWriteStream, existsSync } from 'node:fs';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CliError, type Command } from './command.ts';
import { FILTER_USAGE, openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { OutputRefused, writeNewPrivateFile } from './new-private-file.ts';

const USAGE = `usage: keyway audit export [source] [filters] [--format ndjson|csv] [--output FILE]

Writes every matching audit event, oldest first, as NDJSON (one record a line, with its chain
link and index columns: what \`keyway audit verify\` and any JCS implementation can check) or
CSV. FILE holds subjects, claims and client addresses: it is written 0600 through a 0700
staging directory beside it, so it is whole or absent, and an existing FILE is never overwritten.

${SOURCE_USAGE}

${FILTER_USAGE}
  --format F                ndjson (default) or csv
  --output FILE             write there instead of to standard output (must not exist)`;

export const auditExport: Command = {
  summary: 'export audit events as NDJSON or CSV',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, { format: { type: 'string', default: 'ndjson' }, output: { type: 'string' } });
    const format = values['format'];
    if (format !== 'ndjson' && format !== 'csv') throw new CliError('--format is ndjson or csv');
    if (values['json'] === true) throw new CliError('export writes NDJSON or CSV; --json does not apply');
    const output = typeof values['output'] === 'string' ? resolve(values['output']) : undefined;
    if (output !== undefined && existsSync(output)) throw new CliError(`--output ${output} exists; an export never overwrites a file`);
    const source = await openAuditSource(values);
    try {
      const chunks = source.export(params, format);
      if (output !== undefined) {
        await writePrivateFile(output, chunks);
        return 0;
      }
      for await (const chunk of chunks) {
        if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
      }
      return 0;
    } finally {
      source.close();
    }
  },
};

/** `chunks` into a new file at `output`, as keyway backup writes its file: 0600 whatever the umask, whole or absent, never over another. */
async function writePrivateFile(output: string, chunks: AsyncIterable<string>): Promise<void> {
  try {
    // Into the 0600 file as it is: a stream that created the file would give it the umask's mode.
    await writeNewPrivateFile(output, (partial) => pipeline(chunks, createWriteStream(partial, { flags: 'r+' })));
  } catch (error) {
    const { code, syscall } = error as NodeJS.ErrnoException;
    if (code === 'EEXIST') throw new CliError(`--output ${output} exists; an export never overwrites a file`);
    // The file system's refusal (no such directory, no space) or the output path's; the source's errors are its own.
    if (syscall !== undefined || error instanceof OutputRefused) throw new CliError(`cannot write the export to ${output}: ${(error as Error).message}`, 1);
    throw error;
  }
}
