import { join } from 'node:path';
import { LINT_RULES } from '../core/policy/lint/lint-rules.ts';
import type { LintFinding } from '../core/policy/lint/lint-policies.ts';
import { CliError } from './command.ts';
import { inertLines } from './terminal-text.ts';

export const FINDING_FORMATS = ['text', 'json', 'github'] as const;
export type FindingFormat = (typeof FINDING_FORMATS)[number];

export function findingFormat(value: string): FindingFormat {
  if (!(FINDING_FORMATS as readonly string[]).includes(value)) throw new CliError(`--format is one of ${FINDING_FORMATS.join(', ')}`);
  return value as FindingFormat;
}

function why(finding: LintFinding): string | undefined {
  return finding.rule in LINT_RULES ? LINT_RULES[finding.rule as keyof typeof LINT_RULES].why : undefined;
}

/** Escapes a workflow command's data (`::error …::data`) and its properties, as GitHub's toolkit does. */
function escapeData(text: string): string {
  return text.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
}

function escapeProperty(text: string): string {
  return escapeData(text).replaceAll(':', '%3A').replaceAll(',', '%2C');
}

/**
 * Findings as `file:line:col severity message [rule]` lines, as JSON, or as GitHub workflow
 * annotations (`::error file=…,line=…::…`). File paths are shown under `dir`, as given.
 */
export function formatFindings(findings: readonly LintFinding[], dir: string, format: FindingFormat): string {
  const path = (finding: LintFinding): string => join(dir, finding.file);
  switch (format) {
    case 'json':
      return `${JSON.stringify(
        findings.map((finding) => ({ ...finding, file: path(finding), ...(why(finding) === undefined ? {} : { why: why(finding) }) })),
        null,
        2,
      )}\n`;
    case 'github':
      return findings
        .map(
          (finding) =>
            `::${finding.severity} file=${escapeProperty(path(finding))},line=${finding.line},col=${finding.column},title=${escapeProperty(`keyway ${finding.rule}`)}::${escapeData(
              `${finding.message}${why(finding) === undefined ? '' : `\n(${finding.rule}: ${why(finding)})`}`,
            )}\n`,
        )
        .join('');
    case 'text':
      // One line each, inert: a message quotes what the policy's author wrote (a pull request's, in CI), and a line break in
      // it would start a line of its own, which a CI log may run as a command (GitHub Actions' `::…::`).
      return findings
        .map((finding) => inertLines([`${path(finding)}:${finding.line}:${finding.column} ${finding.severity} ${finding.message} [${finding.rule}]`]))
        .join('');
  }
}

export { summarizeFindings } from '../core/policy/diff/render-diff-markdown.ts';
