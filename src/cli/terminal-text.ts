import { inert } from '../core/inert-text.ts';

/** Lines for people, each made inert (core/inert-text.ts: controls and invisible characters as `\uXXXX`), then joined, with a final line feed. */
export function inertLines(lines: readonly string[]): string {
  return `${lines.map(inert).join('\n')}\n`;
}
