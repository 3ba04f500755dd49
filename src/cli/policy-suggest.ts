import { inertLines } from './terminal-text.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditQueryError, parseTime } from '../core/audit/audit-query.ts';
import { loadPolicies } from '../core/policy/load-policies.ts';
import { suggestNarrowing, type NarrowingSuggestion } from '../core/policy/suggest-narrowing.ts';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { openAuditSource, SOURCE_OPTIONS, SOURCE_USAGE } from './audit-source.ts';
import { CliError, type Command } from './command.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';
import { renderDiffText } from './policy-diff.ts';

const USAGE = `usage: keyway policy suggest [DIR] [source] [--window SPAN] [--write] [--format text|json]

Unused access, from the audit log: for every enforcing allow policy under DIR and each element
of its grant (scope, audience, GitHub permission, GitHub repository), whether it was granted in
the window; a policy that granted nothing; and claims every grant carried with the same value
(pin it). Prints the policies narrowed to what was used as keyway policy diff shows a change,
with the evidence for each. It never widens, never edits a policy that granted nothing, and
writes the files only with --write.

${SOURCE_USAGE}

options:
  --window SPAN             how far back to look: 90d (default), 24h, …
  --write                   write the narrowed policies into DIR
  --format text|json
Exit status 0; 2 for a malformed window or option; 1 when the policies do not load or the log
cannot be read.`;

const SPAN = /^\d{1,6}[mhd]$/;

function render(suggestion: NarrowingSuggestion, written: boolean): string {
  const out: string[] = [];
  for (const policy of [...new Set(suggestion.findings.map((finding) => finding.policy))]) {
    out.push(`${policy}:`);
    for (const finding of suggestion.findings.filter((entry) => entry.policy === policy)) {
      out.push(`  ${finding.status.padEnd(8)} ${finding.element === 'policy' ? 'policy' : `${finding.element} ${finding.value}`}: ${finding.evidence}`);
    }
  }
  out.push('', suggestion.files.length === 0 ? 'nothing to narrow' : `suggested narrowing${written ? ' (written)' : ' (not written; --write writes it)'}:`);
  if (suggestion.files.length > 0) out.push(...renderDiffText(suggestion.diffs));
  return inertLines(out);
}

export const policySuggest: Command = {
  summary: 'unused access from the audit log, and the policies narrowed to what was used',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        'data-dir': SOURCE_OPTIONS['data-dir'],
        url: SOURCE_OPTIONS.url,
        token: SOURCE_OPTIONS.token,
        window: { type: 'string', default: '90d' },
        write: { type: 'boolean', default: false },
        format: { type: 'string', default: 'text' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.format !== 'text' && values.format !== 'json') throw new CliError('--format is text or json');
    if (!SPAN.test(values.window)) throw new CliError('--window is a span back from now: 90d, 24h or 30m');
    const dir = policyDirectory(positionals[0]);
    const options = policyLoadOptions();
    const files = readPolicyDirectory(dir);
    // Policies that do not load get no suggestion: the error says why (exit 1).
    loadPolicies(files, options);
    const now = Date.now();
    let since: number;
    try {
      since = parseTime('--window', values.window, now);
    } catch (error) {
      if (error instanceof AuditQueryError) throw new CliError(error.message);
      throw error;
    }
    const source = await openAuditSource(values);
    let suggestion: NarrowingSuggestion;
    try {
      const usage = await source.usage({ since, until: now });
      suggestion = suggestNarrowing(files, options, { since, until: now, ...usage });
    } finally {
      source.close();
    }
    if (values.write) for (const file of suggestion.files) writeFileSync(join(dir, file.path), file.text);
    process.stdout.write(
      values.format === 'json' ? `${JSON.stringify({ ...suggestion, written: values.write }, null, 2)}\n` : render(suggestion, values.write),
    );
    return 0;
  },
};
