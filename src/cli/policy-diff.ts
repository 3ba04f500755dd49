import { parseArgs } from 'node:util';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { diffPolicies, type PolicyDiff } from '../core/policy/diff/diff-policies.ts';
import { DIFF_ARROW as ARROW, renderDiffMarkdown, summarizeFindings } from '../core/policy/diff/render-diff-markdown.ts';
import { compilePolicyFiles } from '../core/policy/load-policies.ts';
import { checkPolicies, type LintFinding } from '../core/policy/lint/lint-policies.ts';
import { CliError, type Command } from './command.ts';
import { formatFindings } from './format-findings.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';
import { inert } from '../core/inert-text.ts';

const USAGE = `usage: keyway policy diff OLD_DIR NEW_DIR [--format text|markdown]

What a change to the policies does to access, policy by policy (matched by id): added,
removed, widened (a line removed or broadened, audiences, scopes or TTL added, single_use
dropped, the issuer's max_token_age lengthened or an algorithm added), narrowed, or changed
where no direction can be proven (two different regexes, a new issuer or issuer kind, a new
subject template, a proxy or cloud grant edited). A deny policy that matches more narrows access; one in mode: audit or
disabled changes none. Then the lint of NEW_DIR, as keyway policy check prints it.
Exits 1 when NEW_DIR has errors (it would not load).

options:
  --format text       (default)
  --format markdown   for a pull request comment`;

/** Each policy's diff status, then its changes with their direction: the text form `keyway policy diff` and `policy suggest` print. */
export function renderDiffText(diffs: readonly PolicyDiff[]): string[] {
  const out: string[] = diffs.length === 0 ? ['no policy changed'] : [];
  for (const diff of diffs) {
    out.push(`${diff.id}: ${diff.status}${diff.status === 'added' || diff.status === 'removed' ? ` (${ARROW[diff.access]})` : ''}`);
    out.push(...diff.changes.map((change) => `  ${change.what}${change.access === 'none' ? '' : ` [${change.access}]`}`));
  }
  return out;
}

function renderText(diffs: readonly PolicyDiff[], findings: readonly LintFinding[], newDir: string): string {
  const out = [...renderDiffText(diffs), '', `lint of ${newDir}: ${summarizeFindings(findings)}`];
  // A policy's id (its file's path), its values and its lint findings quote whoever wrote it, a pull request's author among
  // them: each line is made inert as it is, so that a line break in them is shown, never a line of its own.
  return `${out.map(inert).join('\n')}\n${formatFindings(findings, newDir, 'text')}`;
}

export const policyDiff: Command = {
  summary: 'what a change to the policies does to access (text or Markdown)',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { format: { type: 'string', default: 'text' } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 2) throw new CliError('give OLD_DIR and NEW_DIR');
    if (values.format !== 'text' && values.format !== 'markdown') throw new CliError('--format is text or markdown');
    const options = policyLoadOptions();
    const [oldDir, newDir] = positionals.map((dir) => policyDirectory(dir)) as [string, string];
    const before = compilePolicyFiles(readPolicyDirectory(oldDir), options);
    const after = compilePolicyFiles(readPolicyDirectory(newDir), options);
    const diffs = diffPolicies(before, after);
    const findings = checkPolicies(after);
    process.stdout.write(values.format === 'markdown' ? renderDiffMarkdown(diffs, findings, newDir) : renderText(diffs, findings, newDir));
    return findings.some((finding) => finding.severity === 'error') ? 1 : 0;
  },
};
