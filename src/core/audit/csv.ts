import type { AuditRecord } from './audit-event.ts';
import { auditIndex } from './audit-index.ts';
import { inert } from '../inert-text.ts';

/** One row per record: the fields auditors sort and filter on in a spreadsheet. */
const COLUMNS: readonly [string, (record: AuditRecord) => unknown][] = [
  ['seq', (r) => r.chain.seq],
  ['id', (r) => r.event.id],
  ['time', (r) => r.event.time],
  ['decision', (r) => r.event.decision],
  ['reason', (r) => r.event.reason],
  ['issuer', (r) => r.event.issuer ?? r.event.subject_token?.claimed_iss],
  ['subject', (r) => r.event.subject ?? r.event.subject_token?.claimed_sub],
  ['verified', (r) => r.event.issuer !== undefined],
  ['repository', (r) => r.event.claims?.['repository'] ?? r.event.claims?.['project_path']],
  ['ref', (r) => r.event.claims?.['ref']],
  ['sha', (r) => r.event.claims?.['sha']],
  ['environment', (r) => r.event.claims?.['environment']],
  ['policy', (r) => r.event.policy?.granted_by ?? r.event.policy?.denied_by[0]],
  // As the index column has it: a proxied call's keyway JWT too, so the export finds what `?jti=` finds.
  ['issued_jti', (r) => auditIndex(r.event).issued_jti],
  ['issued_aud', (r) => r.event.issued?.aud.join(' ')],
  ['issued_scope', (r) => r.event.issued?.scope.join(' ')],
  ['issued_exp', (r) => r.event.issued?.exp],
  ['subject_token_jti', (r) => r.event.subject_token?.jti],
  ['subject_token_sha256', (r) => r.event.subject_token?.sha256],
  ['client_ip', (r) => r.event.request.client_ip],
  ['user_agent', (r) => r.event.request.user_agent],
  ['request_id', (r) => r.event.request.id],
  ['detail', (r) => r.event.detail],
  ['prev_hash', (r) => r.chain.prev_hash],
  ['hash', (r) => r.chain.hash],
  // Where subject_token_sha256 is empty for a token not shaped as a JWT (presented-token.ts); last, so the columns before keep their places.
  ['subject_token_length', (r) => r.event.subject_token?.length],
];

export const CSV_HEADER = `${COLUMNS.map(([name]) => name).join(',')}\r\n`;

/**
 * What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list): = + - @, a tab or a CR, also after white
 * space (a space, a no-break space, …), which a spreadsheet may trim off a cell's start before it looks.
 */
const FORMULA_START = /^\s*[=+\-@\t\r]/;
/**
 * Where a cell starts inside one of ours for a spreadsheet that splits on `;` (the list separator of many locales, which
 * opens a `,` file with it) or on tabs (LibreOffice's import dialog, Google Sheets' guess of the separator): after a
 * `;`, a tab or a line break, where our quotes mid-field mean nothing to it. A formula character there (after white
 * space too), or a `"` (a field it reads as quoted, whose text may be a formula), gets the apostrophe too.
 */
const FORMULA_AFTER_SEPARATOR = /([;\t\r\n])(?=\s*[=+\-@\t\r"])/g;
/** The tab and line breaks RFC 4180 quoting carries in a cell, which a spreadsheet shows as the white space they are. */
const CELL_WHITE_SPACE = /([\t\r\n])/;

/**
 * RFC 4180 quoting, plus guards for the people who open the file in a spreadsheet. A claimed `sub` or a user agent is
 * attacker-chosen: every invisible character in it (a bidi override, a zero-width space) is written as a visible `\uXXXX`
 * escape, as the /audit page and the CLI show it (inert-text.ts), but for a tab and line breaks, which a cell shows as
 * what they are; and a cell that starts with = + - @ (or a tab or CR), after any white space, would run as a formula, so
 * such cells get a leading apostrophe, and so does every such start after a `;`, a tab or a line break inside a cell
 * (FORMULA_AFTER_SEPARATOR). A cell holding `,` `;` `"` a tab or a line break is quoted. Numbers are the broker's own and
 * stay numbers. The exact text is the NDJSON export's.
 */
export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const written = typeof value === 'object' ? JSON.stringify(value) : String(value);
  const visible = written
    .split(CELL_WHITE_SPACE)
    .map((part, index) => (index % 2 === 1 ? part : inert(part)))
    .join('');
  const text = `${FORMULA_START.test(visible) ? "'" : ''}${visible.replace(FORMULA_AFTER_SEPARATOR, "$1'")}`;
  return /[",;\t\r\n]/.test(text) || text !== text.trim() ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvRow(record: AuditRecord): string {
  return `${COLUMNS.map(([, read]) => csvCell(read(record))).join(',')}\r\n`;
}
