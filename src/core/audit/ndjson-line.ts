/**
 * What JSON leaves unescaped in a string that some line readers still end a line at: NEL, and Unicode's line and
 * paragraph separators (Python's str.splitlines() among them). The C0 ones JSON escapes itself.
 */
const LINE_ENDS = /[\u0085\u2028\u2029]/g;

/**
 * `value` as one NDJSON line, its line feed included. A caller's text (a claimed `sub`, a user agent) holding one of
 * LINE_ENDS would otherwise split a record in two for such a reader, hiding it from whoever reads the export so; they
 * appear only inside strings, where the `\uXXXX` escape is the same text.
 */
export function ndjsonLine(value: unknown): string {
  return `${JSON.stringify(value).replace(LINE_ENDS, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}
