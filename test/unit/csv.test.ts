import { describe, expect, it } from 'vitest';
import { csvCell } from '../../src/core/audit/csv.ts';

/** What a spreadsheet runs as a formula at the start of a cell (OWASP). */
const FORMULA = /^[=+\-@\t\r]/;

/** RFC 4180 as a spreadsheet whose list separator is `,` reads one row. */
function readCommaRow(row: string): string[] {
  const cells: string[] = [];
  let at = 0;
  for (;;) {
    let cell = '';
    if (row[at] === '"') {
      at += 1;
      for (;;) {
        const quote = row.indexOf('"', at);
        cell += row.slice(at, quote);
        at = quote + 1;
        if (row[at] !== '"') break;
        cell += '"';
        at += 1;
      }
    } else {
      const comma = row.indexOf(',', at);
      cell = row.slice(at, comma === -1 ? row.length : comma);
      at = comma === -1 ? row.length : comma;
    }
    cells.push(cell);
    if (at >= row.length) return cells;
    at += 1;
  }
}

/**
 * The cells a spreadsheet whose list separator is `;`, or one that splits on tabs (LibreOffice's import dialog, Google
 * Sheets' guess), starts in the same text: after each `;`, tab or line break, whatever quotes stand around it; a field it
 * reads as quoted is taken at its word (every leading `"` dropped), the strictest reading.
 */
function separatorFieldStarts(row: string): string[] {
  return row
    .split(/[;\t\r\n]/)
    .slice(1)
    .map((field) => field.replace(/^"+/, ''));
}

const HOSTILE: readonly unknown[] = [
  '=1+1',
  '+1',
  '-1+1',
  '@SUM(A1)',
  '\t=1+1',
  '\r=1+1',
  '=HYPERLINK("https://evil.example","x")',
  'a;=1+1',
  'a;+1',
  'a;-1',
  'a;@SUM(A1)',
  'a;\t=1+1',
  'a;\r=1+1',
  'a\t=HYPERLINK("https://evil.example","x")',
  'a\t+1',
  'a\t\t@SUM(A1)',
  'a\t"=1+1',
  'x;"=1+1;y',
  'x;""=1+1',
  'a\n=1+1',
  'a\r\n@SUM(A1)',
  'a,=1+1',
  'a, =1+1;=2',
  { note: 'a;=1+1' },
  ' =1+1',
  '\u00a0@SUM(A1)',
  '\u3000-1+1',
  '  \t=1+1',
  'a; =1+1',
  'a;\u00a0+1',
  'a\t \u2003@SUM(A1)',
  'a\n  =1+1',
  'a; "=1+1',
];

describe('CSV cells an attacker wrote', () => {
  it.each(HOSTILE.map((value) => [JSON.stringify(value), value]))('%s starts no formula, read with , ; or a tab as the separator', (_name, value) => {
    // Between two plain cells, as a record's columns stand in a row.
    const row = `1,${csvCell(value)},2`;
    const cells = readCommaRow(row);
    expect(cells).toHaveLength(3);
    expect(cells[1]).not.toMatch(FORMULA);
    for (const start of separatorFieldStarts(row)) expect(start).not.toMatch(FORMULA);
    // As a spreadsheet that trims white space off a cell's start reads it.
    expect(cells[1]?.trimStart()).not.toMatch(FORMULA);
    for (const start of separatorFieldStarts(row)) expect(start.trimStart()).not.toMatch(FORMULA);
  });

  it('keeps what was written, behind an apostrophe where a formula could start, quoted where it holds a separator', () => {
    expect(csvCell('=1+1')).toBe("'=1+1");
    expect(csvCell('\t=1')).toBe(`"'\t'=1"`);
    expect(csvCell('a\t=1')).toBe(`"a\t'=1"`);
    expect(csvCell('a\tb')).toBe(`"a\tb"`);
    expect(csvCell('a;=1+1')).toBe(`"a;'=1+1"`);
    expect(csvCell('a;b')).toBe('"a;b"');
    expect(csvCell('x;"=1;y')).toBe(`"x;'""=1;y"`);
    expect(csvCell('a\n-1')).toBe(`"a\n'-1"`);
    expect(readCommaRow(`${csvCell('=HYPERLINK("https://evil.example","x")')}`)).toEqual([`'=HYPERLINK("https://evil.example","x")`]);
  });

  it('puts the apostrophe before white space that a spreadsheet may trim off ahead of a formula', () => {
    expect(csvCell(' =1+1')).toBe("' =1+1");
    expect(csvCell('\u00a0@x')).toBe("'\u00a0@x");
    expect(csvCell('a; =1+1')).toBe(`"a;' =1+1"`);
  });

  it('writes invisible characters as visible escapes, as the /audit page and the CLI show them, but keeps tabs and line breaks', () => {
    expect(csvCell('repo:acme/\u202edorp')).toBe('repo:acme/\\u202edorp');
    expect(csvCell('repo:acme/prod\u200b')).toBe('repo:acme/prod\\u200b');
    expect(csvCell('\u200b=1+1')).toBe('\\u200b=1+1');
    expect(csvCell('\ufeffx\u2028y')).toBe('\\ufeffx\\u2028y');
    expect(csvCell('line one\nline two\tend')).toBe('"line one\nline two\tend"');
  });

  it('leaves the broker’s own numbers and plain text as they are', () => {
    expect(csvCell(-5)).toBe('-5');
    expect(csvCell(1_767_225_600)).toBe('1767225600');
    expect(csvCell(true)).toBe('true');
    expect(csvCell('repo:acme/api:ref:refs/heads/main')).toBe('repo:acme/api:ref:refs/heads/main');
    expect(csvCell('a-b+c=d@e')).toBe('a-b+c=d@e');
    expect(csvCell(undefined)).toBe('');
  });
});
