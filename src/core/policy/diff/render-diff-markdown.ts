import type { LintFinding } from '../lint/lint-policies.ts';
import type { PolicyDiff } from './diff-policies.ts';

export const DIFF_ARROW: Record<PolicyDiff['access'], string> = {
  widened: 'widens access',
  narrowed: 'narrows access',
  changed: 'changes access',
  none: 'no effect on access',
};

/** `2 errors, 1 warning, 0 notices`. */
export function summarizeFindings(findings: readonly LintFinding[]): string {
  const count = (severity: LintFinding['severity'], noun: string): string => {
    const n = findings.filter((finding) => finding.severity === severity).length;
    return `${n} ${noun}${n === 1 ? '' : 's'}`;
  };
  return `${count('error', 'error')}, ${count('warning', 'warning')}, ${count('notice', 'notice')}`;
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** Diffs that give some request more access than before. */
export function wideningDiffs(diffs: readonly PolicyDiff[]): PolicyDiff[] {
  return diffs.filter(
    (diff) =>
      diff.status === 'widened' ||
      diff.status === 'widened and narrowed' ||
      ((diff.status === 'added' || diff.status === 'removed') && diff.access === 'widened'),
  );
}

/**
 * A policy diff and the lint of the new directory as Markdown: `keyway policy diff --format
 * markdown` prints it for a pull request comment, and the policy review check run shows it.
 * Files are shown under `dir`.
 */
export function renderDiffMarkdown(diffs: readonly PolicyDiff[], findings: readonly LintFinding[], dir: string): string {
  const out = ['### keyway policy diff', ''];
  if (diffs.length === 0) {
    out.push('No policy changed.');
  } else {
    const widened = wideningDiffs(diffs);
    if (widened.length > 0) out.push(`**${widened.length} polic${widened.length === 1 ? 'y widens' : 'ies widen'} access.**`, '');
    out.push('| policy | change | details |', '|---|---|---|');
    for (const diff of diffs) {
      const status = diff.status === 'added' || diff.status === 'removed' ? `${diff.status} (${DIFF_ARROW[diff.access]})` : diff.status;
      const details = diff.changes.map((change) => `\`${cell(change.what)}\`${change.access === 'none' ? '' : ` ${change.access}`}`).join('<br>');
      out.push(`| \`${cell(diff.id)}\` | **${status}** | ${details} |`);
    }
  }
  out.push('', `#### Lint of \`${dir}\`: ${summarizeFindings(findings)}`);
  if (findings.length > 0) {
    out.push('', '| where | severity | rule | message |', '|---|---|---|---|');
    for (const finding of findings) {
      out.push(
        `| \`${cell(`${dir.replace(/\/+$/, '')}/${finding.file}`)}:${finding.line}:${finding.column}\` | ${finding.severity} | \`${finding.rule}\` | ${cell(finding.message)} |`,
      );
    }
  }
  return `${out.join('\n')}\n`;
}
