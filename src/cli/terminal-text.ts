/**
 * One line as a terminal shows it, not as it acts on it: every control character (ESC, BEL, CSI, a line feed that would
 * start a line of its own) and bidi control written as a visible `\uXXXX` escape. What the CLI prints for people holds
 * what callers chose (a refused token's claimed sub, the audience a pipeline asked for, claim values).
 */
export function inert(line: string): string {
  return line.replace(/[\p{Cc}\p{Bidi_Control}]/gu, (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** Lines for people, each made inert, then joined, with a final line feed. */
export function inertLines(lines: readonly string[]): string {
  return `${lines.map(inert).join('\n')}\n`;
}
