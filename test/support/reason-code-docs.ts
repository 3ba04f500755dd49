import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the reason-code table is documented. One constant, so moving the table moves the test. */
export const REASON_CODE_DOCS = 'docs/reference/reason-codes.md';

const REPOSITORY_ROOT = new URL('../..', import.meta.url).pathname;

export interface ReasonCodeRow {
  /** Column name (lower case) → cell text, backticks stripped. */
  readonly [column: string]: string;
}

/** The documented reason-code table: the Markdown table whose header names `reason` first and has a `decision` column. */
export function documentedReasonCodes(): { readonly file: string; readonly columns: readonly string[]; readonly rows: readonly ReasonCodeRow[] } {
  const file = REASON_CODE_DOCS;
  const lines = readFileSync(join(REPOSITORY_ROOT, file), 'utf8').split('\n');
  const cells = (line: string): string[] =>
    line
      .trim()
      .replace(/^\|/, '')
      .replace(/\|$/, '')
      .split('|')
      .map((cell) => cell.trim().replaceAll('`', ''));
  const start = lines.findIndex((line) => {
    const header = line.trim().startsWith('|') ? cells(line).map((cell) => cell.toLowerCase()) : [];
    return header[0] === 'reason' && header.includes('decision');
  });
  if (start === -1) throw new Error(`${file} has no table whose first column is reason and which has a decision column`);
  const columns = cells(lines[start] ?? '').map((cell) => cell.toLowerCase());
  const body = lines.slice(start + 2);
  const end = body.findIndex((line) => !line.trim().startsWith('|'));
  const rows = (end === -1 ? body : body.slice(0, end)).map((line) =>
    Object.fromEntries(cells(line).map((cell, index) => [columns[index] ?? `${index}`, cell])),
  );
  return { file, columns, rows };
}
