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

/**
 * Text in a Markdown table cell as it was written, on one line: its punctuation escaped, so a policy's author adds no row,
 * emphasis, link, image or HTML to the review of their own change.
 */
export const cell = (text: string): string => text.replaceAll('\n', ' ').replace(/[\\`*_[\]<>!|~&#]/g, '\\$&');

/**
 * Text as a code span in a table cell: fenced by more backticks than any run of them in it, so a backtick the text holds
 * cannot close the span early and put what follows it outside as Markdown.
 */
export function codeCell(text: string): string {
  const flat = text.replaceAll('\n', ' ').replaceAll('|', '\\|');
  const fence = '`'.repeat(Math.max(0, ...(flat.match(/`+/g) ?? []).map((run) => run.length)) + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

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
 * How many policies widen access, and how many change it where no direction can be proven (`changed`: two different regexes,
 * another issuer, lists too long to try each against each), which a reviewer must read as a widening may be among them; empty
 * for neither. The headline of the diff and of the policy review's title.
 */
export function accessHeadline(diffs: readonly PolicyDiff[]): string {
  const widening = wideningDiffs(diffs).length;
  const unranked = diffs.filter((diff) => diff.status === 'changed').length;
  return [
    widening === 0 ? '' : `${widening} polic${widening === 1 ? 'y widens' : 'ies widen'} access`,
    unranked === 0 ? '' : `${unranked} polic${unranked === 1 ? 'y changes' : 'ies change'} access in a way keyway cannot rank`,
  ]
    .filter((part) => part !== '')
    .join('; ');
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
    const headline = accessHeadline(diffs);
    if (headline !== '') out.push(`**${headline}.**`, '');
    out.push('| policy | change | details |', '|---|---|---|');
    for (const diff of diffs) {
      const status = diff.status === 'added' || diff.status === 'removed' ? `${diff.status} (${DIFF_ARROW[diff.access]})` : diff.status;
      const details = diff.changes.map((change) => `${codeCell(change.what)}${change.access === 'none' ? '' : ` ${change.access}`}`).join('<br>');
      out.push(`| ${codeCell(diff.id)} | **${status}** | ${details} |`);
    }
  }
  out.push('', `#### Lint of \`${dir}\`: ${summarizeFindings(findings)}`);
  if (findings.length > 0) {
    out.push('', '| where | severity | rule | message |', '|---|---|---|---|');
    for (const finding of findings) {
      out.push(
        `| ${codeCell(`${dir.replace(/\/+$/, '')}/${finding.file}:${finding.line}:${finding.column}`)} | ${finding.severity} | \`${finding.rule}\` | ${cell(finding.message)} |`,
      );
    }
  }
  return `${out.join('\n')}\n`;
}
