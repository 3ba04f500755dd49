import { inert } from '../core/inert-text.ts';

/** A plain-text table for people: columns padded to their widest cell, cells cut at `maxWidth`. */
export function formatTable(header: readonly string[], rows: readonly (readonly unknown[])[], maxWidth = 60): string {
  const text = (value: unknown) => {
    const shown = value === undefined || value === null ? '' : inert(String(value).replace(/\s+/g, ' '));
    return shown.length > maxWidth ? `${shown.slice(0, maxWidth - 1)}…` : shown;
  };
  const cells = [header, ...rows].map((row) => row.map(text));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  return cells
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
